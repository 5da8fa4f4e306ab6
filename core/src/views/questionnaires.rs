//! Answered questionnaires (QuestionnaireResponse): screening forms (PHQ-9, GAD-7), intake forms.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// One answered question; nested groups are flattened in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionAnswer {
    /// The question's text, else its link id.
    pub question: String,
    /// Every answer as text, joined with ", ".
    pub answer: String,
}

/// A questionnaire the patient (or someone for them) filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionnaireResponse {
    pub id: String,
    pub source: Option<String>,
    /// The questionnaire's title when the server sent one (an extension on `questionnaire`), else the last part
    /// of its canonical URL, else "Questionnaire".
    pub title: String,
    /// "completed", "in-progress", "amended", ...
    pub status: String,
    pub authored: Option<FhirDate>,
    pub author: Option<String>,
    pub answers: Vec<QuestionAnswer>,
}

/// A questionnaire response from a QuestionnaireResponse.
pub fn questionnaire_response(r: &Value) -> Option<QuestionnaireResponse> {
    let id = resource_id(r, "QuestionnaireResponse")?;
    let title = list(&r["_questionnaire"]["extension"])
        .iter()
        .find_map(|e| string(&e["valueString"]))
        .or_else(|| {
            let canonical = string(&r["questionnaire"])?;
            let name = canonical.split('|').next()?.rsplit('/').next()?;
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "Questionnaire".into());
    let mut answers = Vec::new();
    collect_answers(&r["item"], &mut answers, 0);
    Some(QuestionnaireResponse {
        id,
        source: None,
        title,
        status: status(r),
        authored: date(&r["authored"]),
        author: display(&r["author"]),
        answers,
    })
}

/// Nesting deeper than this is not followed (a hostile document cannot exhaust the stack).
const MAX_DEPTH: usize = 16;

fn collect_answers(items: &Value, out: &mut Vec<QuestionAnswer>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for item in list(items) {
        let texts: Vec<String> = list(&item["answer"])
            .iter()
            .filter_map(answer_text)
            .collect();
        let question = string(&item["text"]).or_else(|| string(&item["linkId"]));
        if let (false, Some(question)) = (texts.is_empty(), question) {
            out.push(QuestionAnswer {
                question,
                answer: texts.join(", "),
            });
        }
        collect_answers(&item["item"], out, depth + 1);
        for answer in list(&item["answer"]) {
            collect_answers(&answer["item"], out, depth + 1);
        }
    }
}

fn answer_text(answer: &Value) -> Option<String> {
    for field in [
        "valueString",
        "valueDate",
        "valueDateTime",
        "valueTime",
        "valueUri",
    ] {
        if let Some(s) = string(&answer[field]) {
            return Some(s);
        }
    }
    if let Some(b) = answer["valueBoolean"].as_bool() {
        return Some(if b { "Yes" } else { "No" }.into());
    }
    if let Some(n) = answer["valueInteger"].as_i64() {
        return Some(n.to_string());
    }
    if let Some(n) = answer["valueDecimal"].as_f64() {
        return Some(n.to_string());
    }
    coding(&answer["valueCoding"])
        .map(|c| c.label())
        .or_else(|| quantity(&answer["valueQuantity"]).map(|q| quantity_text(&q)))
        .or_else(|| display(&answer["valueReference"]))
}

super::view!(
    QuestionnaireResponse,
    ["QuestionnaireResponse"],
    questionnaire_response,
    authored
);

impl Line for QuestionnaireResponse {
    fn line(&self) -> String {
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|a| format!("{}: {}", a.question, a.answer))
            .collect();
        dated(
            self.authored.as_ref(),
            &self.title,
            &self.status,
            &answers.join("; "),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn answers_are_flattened_in_order() {
        let r = json!({"resourceType": "QuestionnaireResponse", "id": "qr", "status": "completed",
            "questionnaire": "http://loinc.org/q/44249-1|2.0", "authored": "2024-02-02T10:00:00Z",
            "item": [{"linkId": "g", "text": "PHQ-9", "item": [
                {"linkId": "1", "text": "Little interest", "answer": [{"valueCoding": {"display": "Several days"}}]},
                {"linkId": "2", "answer": [{"valueInteger": 3}, {"valueBoolean": true}]}]},
                {"linkId": "3", "text": "Unanswered"}]});
        let q = questionnaire_response(&r).unwrap();
        assert_eq!(
            (q.title.as_str(), q.authored),
            ("44249-1", Some(d("2024-02-02T10:00:00Z")))
        );
        let got: Vec<(&str, &str)> = q
            .answers
            .iter()
            .map(|a| (a.question.as_str(), a.answer.as_str()))
            .collect();
        assert_eq!(got, [("Little interest", "Several days"), ("2", "3, Yes")]);
        let mut deep = json!({"linkId": "x", "answer": [{"valueString": "a"}]});
        for _ in 0..100 {
            deep = json!({"linkId": "x", "item": [deep]});
        }
        let r = json!({"resourceType": "QuestionnaireResponse", "id": "d", "item": [deep]});
        assert!(
            questionnaire_response(&r).unwrap().answers.is_empty(),
            "too deep is not followed"
        );
    }
}
