//! Clinical documents (DocumentReference) and their content (Binary: text, HTML, PDF or other).

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// Standard base64 that also accepts missing padding (some servers strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A clinical document (DocumentReference); its content is a Binary read separately, see [`document_content`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub source: Option<String>,
    pub title: String,
    pub date: Option<FhirDate>,
    /// The document type ("Progress note").
    pub kind: Option<String>,
    pub content_type: Option<String>,
    /// The id of the Binary holding the content, from an attachment URL "Binary/<id>" (relative or absolute).
    pub binary_id: Option<String>,
    /// The Encounter the document belongs to.
    pub visit_id: Option<String>,
}

/// The content of a document, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocumentContent {
    Text(String),
    Html(String),
    Pdf(Vec<u8>),
    Other {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// A document from a DocumentReference. Title: the attachment's title, else the type's text or display, else the
/// description, else the type's code.
pub fn document(r: &Value) -> Option<Document> {
    let id = resource_id(r, "DocumentReference")?;
    let attachments: Vec<&Value> = list(&r["content"])
        .iter()
        .map(|c| &c["attachment"])
        .collect();
    // Prefer the attachment we can fetch: one whose URL names a Binary.
    let attachment = attachments
        .iter()
        .find(|a| attachment_binary(a).is_some())
        .or(attachments.first())
        .copied()
        .unwrap_or(&NULL);
    let title = string(&attachment["title"])
        .or_else(|| concept_label(&r["type"]))
        .or_else(|| string(&r["description"]))
        .or_else(|| concept_name(&r["type"]))
        .unwrap_or_else(|| "Document".into());
    let visit_id = list(&r["context"]["encounter"])
        .iter()
        .find_map(|e| reference_id(e["reference"].as_str()?, "Encounter"))
        .map(str::to_owned);
    Some(Document {
        id,
        source: None,
        title,
        date: first_date(&[
            &r["date"],
            &r["context"]["period"]["start"],
            &attachment["creation"],
        ]),
        kind: concept_name(&r["type"]),
        content_type: string(&attachment["contentType"]),
        binary_id: attachment_binary(attachment),
        visit_id,
    })
}

/// The content of a Binary resource (base64 `data`, with or without padding or line breaks). `None` when it is
/// not a Binary or holds no decodable data.
pub fn document_content(binary: &Value) -> Option<DocumentContent> {
    if binary["resourceType"] != "Binary" {
        return None;
    }
    // R4 calls it `data`; STU3 called it `content`.
    let data = binary["data"]
        .as_str()
        .or_else(|| binary["content"].as_str())?;
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64.decode(data).ok()?;
    let content_type = binary["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream");
    Some(document_content_raw(content_type, bytes))
}

/// Content fetched raw (a Binary read with `Accept` set to its type) by its Content-Type: HTML, plain text, PDF
/// (also recognised by its magic bytes under a generic type) or other. Text is read as UTF-8, invalid bytes replaced.
pub fn document_content_raw(content_type: &str, bytes: Vec<u8>) -> DocumentContent {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .trim_start_matches('\u{feff}')
            .to_owned()
    };
    match mime.as_str() {
        "application/pdf" => DocumentContent::Pdf(bytes),
        _ if bytes.starts_with(b"%PDF-") => DocumentContent::Pdf(bytes),
        "text/html" | "application/xhtml+xml" => DocumentContent::Html(text(&bytes)),
        "text/plain" => DocumentContent::Text(text(&bytes)),
        _ => DocumentContent::Other {
            content_type: content_type.to_owned(),
            bytes,
        },
    }
}

fn attachment_binary(attachment: &Value) -> Option<String> {
    reference_id(attachment["url"].as_str()?, "Binary").map(str::to_owned)
}

super::view!(Document, ["DocumentReference"], document, date);

impl Line for Document {
    fn line(&self) -> String {
        format!("{} {}", full_date(self.date.as_ref()), self.title)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use crate::views::*;
    use serde_json::json;

    #[test]
    fn documents_and_their_visits() {
        let r = json!({
            "resourceType": "DocumentReference", "id": "doc",
            "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
            "date": "2024-03-01T12:00:00Z",
            "content": [{"attachment": {"contentType": "text/html", "url": "https://ehr.example/fhir/Binary/b-1",
                "title": "Visit note"}}],
            "context": {"encounter": [{"reference": "Encounter/e-1"}]},
        });
        let doc = document(&r).unwrap();
        assert_eq!(
            (doc.title.as_str(), doc.kind.as_deref()),
            ("Visit note", Some("Progress note"))
        );
        assert_eq!(
            (doc.binary_id.as_deref(), doc.visit_id.as_deref()),
            (Some("b-1"), Some("e-1"))
        );
        assert_eq!(doc.content_type.as_deref(), Some("text/html"));
        let untitled = json!({"resourceType": "DocumentReference", "id": "u", "description": "Scanned letter",
            "content": [{"attachment": {"url": "urn:x:elsewhere"}}, {"attachment": {"url": "Binary/b-2",
            "creation": "2020-02"}}], "context": {"encounter": {"reference": "Encounter/e-2"}}});
        let doc = document(&untitled).unwrap();
        assert_eq!(
            (doc.title.as_str(), doc.binary_id.as_deref()),
            ("Scanned letter", Some("b-2"))
        );
        assert_eq!(
            (doc.date, doc.visit_id.as_deref()),
            (Some(d("2020-02")), Some("e-2"))
        );
        let coded = json!({"resourceType": "DocumentReference", "id": "c", "type": {"coding": [{"system": LOINC, "code": "34133-9"}]}});
        assert_eq!(document(&coded).unwrap().title, "34133-9 (LOINC)");
        let bare = document(&json!({"resourceType": "DocumentReference", "id": "b"})).unwrap();
        assert_eq!((bare.title.as_str(), bare.binary_id), ("Document", None));

        let mut visits = vec![visit(&json!({"resourceType": "Encounter", "id": "e-1"})).unwrap()];
        visits[0].summary_document_ids = vec!["stale".into()];
        let docs = [document(&r).unwrap(), document(&untitled).unwrap()];
        link_visit_documents(&mut visits, &docs);
        assert_eq!(visits[0].summary_document_ids, ["doc"]);
        visits[0].source = Some("other-provider".into());
        link_visit_documents(&mut visits, &docs);
        assert!(
            visits[0].summary_document_ids.is_empty(),
            "same id, another provider"
        );
    }

    #[test]
    fn binaries_of_each_kind() {
        let binary = |content_type: &str, bytes: &[u8]| {
            json!({"resourceType": "Binary", "id": "b", "contentType": content_type,
                "data": base64::engine::general_purpose::STANDARD.encode(bytes)})
        };
        assert_eq!(
            document_content(&binary("text/plain; charset=utf-8", b"Seen today.")),
            Some(DocumentContent::Text("Seen today.".into()))
        );
        assert_eq!(
            document_content(&binary("text/html", b"<p>Hi</p>")),
            Some(DocumentContent::Html("<p>Hi</p>".into()))
        );
        let pdf = b"%PDF-1.4\n...".to_vec();
        assert_eq!(
            document_content(&binary("application/pdf", &pdf)),
            Some(DocumentContent::Pdf(pdf.clone()))
        );
        assert_eq!(
            document_content(&binary("application/octet-stream", &pdf)),
            Some(DocumentContent::Pdf(pdf))
        );
        let rtf = document_content(&binary("text/rtf", b"{\\rtf1}")).unwrap();
        assert_eq!(
            rtf,
            DocumentContent::Other {
                content_type: "text/rtf".into(),
                bytes: b"{\\rtf1}".to_vec()
            }
        );
        // Line breaks and missing padding are tolerated; broken base64 and other resources are not content.
        let wrapped = json!({"resourceType": "Binary", "contentType": "text/plain", "data": "U2Vl\nbiB0b2RheS4"});
        assert_eq!(
            document_content(&wrapped),
            Some(DocumentContent::Text("Seen today.".into()))
        );
        assert_eq!(
            document_content(&json!({"resourceType": "Binary", "data": "!!!"})),
            None
        );
        assert_eq!(document_content(&json!({"resourceType": "Binary"})), None);
        assert_eq!(
            document_content(&json!({"resourceType": "Patient", "data": "AA=="})),
            None
        );
        assert_eq!(
            document_content_raw("TEXT/HTML", vec![0xef, 0xbb, 0xbf, b'x', 0xff]),
            DocumentContent::Html("x\u{fffd}".into())
        );
    }
}
