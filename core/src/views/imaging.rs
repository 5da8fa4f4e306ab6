//! Imaging studies (ImagingStudy): an X-ray, ultrasound, CT or MRI study as the imaging system recorded it, with its
//! modalities, body sites and how many series and images it holds (the images themselves are not fetched).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// An imaging study (ImagingStudy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagingStudy {
    pub id: String,
    pub source: Option<String>,
    /// What to call it: the description, else the procedure, else the modalities ("Ultrasound"), else "Imaging
    /// study".
    pub name: String,
    /// "available", "registered", "cancelled", ...
    pub status: String,
    pub started: Option<FhirDate>,
    /// The modalities of the study and its series ("Ultrasound", "Computed Radiography"), without duplicates.
    pub modalities: Vec<String>,
    /// The procedures performed (procedureCode).
    pub procedures: Vec<String>,
    /// The body parts imaged, from the series ("Thoracic structure").
    pub body_sites: Vec<String>,
    /// The study's description as the imaging system wrote it.
    pub description: Option<String>,
    /// numberOfSeries, else the series listed.
    pub series_count: Option<u32>,
    /// numberOfInstances, else the instances the series count or list.
    pub instance_count: Option<u32>,
    /// Why it was done (reasonCode names, reasonReference displays).
    pub reason: Vec<String>,
}

/// A study from an ImagingStudy.
pub fn imaging_study(r: &Value) -> Option<ImagingStudy> {
    let id = resource_id(r, "ImagingStudy")?;
    let series = list(&r["series"]);
    let mut modalities = Vec::new();
    let mut body_sites = Vec::new();
    for m in list(&r["modality"]) {
        push_new(&mut modalities, code_name(m));
    }
    for s in series {
        push_new(&mut modalities, code_name(&s["modality"]));
        push_new(&mut body_sites, code_name(&s["bodySite"]));
    }
    let procedures = concept_names(&r["procedureCode"]);
    let description = string(&r["description"]);
    let listed_instances: Option<u32> = (!series.is_empty()).then(|| {
        series
            .iter()
            .map(|s| {
                count(&s["numberOfInstances"]).unwrap_or_else(|| len32(list(&s["instance"]).len()))
            })
            .fold(0u32, u32::saturating_add)
    });
    let mut reason = concept_names(&r["reasonCode"]);
    for name in list(&r["reasonReference"]).iter().filter_map(display) {
        push_new(&mut reason, Some(name));
    }
    Some(ImagingStudy {
        id,
        source: None,
        name: description
            .clone()
            .or_else(|| procedures.first().cloned())
            .or_else(|| (!modalities.is_empty()).then(|| modalities.join(", ")))
            .unwrap_or_else(|| "Imaging study".into()),
        status: status(r),
        started: date(&r["started"]),
        modalities,
        procedures,
        body_sites,
        description,
        series_count: count(&r["numberOfSeries"])
            .or_else(|| (!series.is_empty()).then(|| len32(series.len()))),
        instance_count: count(&r["numberOfInstances"]).or(listed_instances),
        reason,
    })
}

super::view!(ImagingStudy, ["ImagingStudy"], imaging_study, started);

/// The name of a Coding (R4's modality and bodySite), or of a CodeableConcept (R5's).
fn code_name(v: &Value) -> Option<String> {
    if v.get("coding").is_some() || v.get("text").is_some() {
        concept_name(v)
    } else {
        coding(v).map(|c| c.label()).filter(|l| !l.is_empty())
    }
}

/// A non-negative count that fits a u32.
fn count(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn push_new(out: &mut Vec<String>, name: Option<String>) {
    if let Some(name) = name.filter(|n| !out.contains(n)) {
        out.push(name);
    }
}

impl Line for ImagingStudy {
    fn line(&self) -> String {
        let count =
            |n: Option<u32>, what: &str| n.map(|n| format!(", {n} {what}")).unwrap_or_default();
        format!(
            "{:<10} {} [{}] {}{}{}",
            day(self.started.as_ref()),
            self.name,
            self.status,
            self.body_sites.join(", "),
            count(self.series_count, "series"),
            count(self.instance_count, "images")
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    /// As Synthea writes one: codings (not concepts) for the modality and body site, no description.
    #[test]
    fn an_imaging_study() {
        let r = json!({"resourceType": "ImagingStudy", "id": "img", "status": "available",
            "started": "2006-01-20T02:28:09+00:00", "numberOfSeries": 1, "numberOfInstances": 1,
            "series": [{"uid": "1.2", "number": 1,
                "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "US", "display": "Ultrasound"},
                "bodySite": {"system": "http://snomed.info/sct", "code": "261179002", "display": "thoracic"},
                "numberOfInstances": 1, "instance": [{"uid": "1.2.1", "title": "Ultrasound Multiframe Image Storage"}]}]});
        let s = imaging_study(&r).unwrap();
        assert_eq!(
            (s.name.as_str(), s.status.as_str(), s.started),
            (
                "Ultrasound",
                "available",
                Some(d("2006-01-20T02:28:09+00:00"))
            )
        );
        assert_eq!(
            (s.modalities, s.body_sites),
            (vec!["Ultrasound".to_owned()], vec!["thoracic".to_owned()])
        );
        assert_eq!((s.series_count, s.instance_count), (Some(1), Some(1)));
        // Described, with a procedure and a reason; counts from the series when the study gives none.
        let r = json!({"resourceType": "ImagingStudy", "id": "ct", "description": "CT chest with contrast",
            "modality": [{"code": "CT"}], "procedureCode": [{"text": "CT of chest"}],
            "reasonCode": [{"text": "Cough"}], "reasonReference": [{"display": "Pneumonia"}],
            "series": [{"modality": {"code": "CT"}, "numberOfInstances": 120},
                {"modality": {"coding": [{"code": "SR", "display": "Structured report"}]}, "instance": [{}, {}]}]});
        let s = imaging_study(&r).unwrap();
        assert_eq!(s.name, "CT chest with contrast");
        assert_eq!(s.modalities, ["CT", "Structured report"]);
        assert_eq!(s.procedures, ["CT of chest"]);
        assert_eq!(s.reason, ["Cough", "Pneumonia"]);
        assert_eq!((s.series_count, s.instance_count), (Some(2), Some(122)));
    }

    #[test]
    fn hostile_imaging_studies() {
        for odd in [
            json!(null),
            json!(-1),
            json!("3"),
            json!([{}]),
            json!(1e300),
            json!(u64::MAX),
        ] {
            let r = json!({"resourceType": "ImagingStudy", "id": "x", "numberOfSeries": odd.clone(),
                "numberOfInstances": odd.clone(), "series": odd.clone(), "modality": odd.clone(),
                "procedureCode": odd.clone(), "description": odd.clone(), "started": odd});
            let s = imaging_study(&r).unwrap();
            assert!(!s.name.is_empty());
            assert_eq!(s.started, None);
        }
        let none = imaging_study(&json!({"resourceType": "ImagingStudy", "id": "x"})).unwrap();
        assert_eq!(
            (none.name.as_str(), none.series_count, none.instance_count),
            ("Imaging study", None, None)
        );
        assert!(imaging_study(&json!({"resourceType": "Procedure", "id": "x"})).is_none());
    }
}
