//! Vital signs: Observations in the vital-signs category (or "vital-sign", as Synthea spells it). They are
//! [`super::Observation`]s of kind [`super::ObservationKind::VitalSign`]; what is here are their tests.

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::views::test_support::*;
    use crate::views::*;
    use serde_json::json;

    #[test]
    fn blood_pressure_is_a_vital_with_components() {
        let part = |code: &str, name: &str, v: f64| {
            json!({"code": lab_concept(code, name),
            "valueQuantity": {"value": v, "unit": "mm[Hg]"}})
        };
        let r = json!({
            "resourceType": "Observation", "id": "bp", "status": "final",
            "category": {"coding": [{"code": "vital-signs"}]},
            "code": lab_concept("85354-9", "Blood pressure"),
            "effectivePeriod": {"start": "2024-03-01T08:30:00-06:00"},
            "component": [part("8480-6", "Systolic", 128.0), part("8462-4", "Diastolic", 82.0), {"code": {}}],
        });
        let vital = vital_sign(&r).unwrap();
        assert_eq!(vital.name, "Blood pressure");
        assert_eq!(vital.date, Some(d("2024-03-01T08:30:00-06:00")));
        let expected = vec![
            ("Systolic".to_owned(), q(128.0, "mm[Hg]")),
            ("Diastolic".to_owned(), q(82.0, "mm[Hg]")),
        ];
        assert_eq!(vital.value, Some(ObservationValue::Components(expected)));
        assert!(
            lab_result(&r).is_none(),
            "a category list without laboratory"
        );
        let synthea_spelling =
            json!({"resourceType": "Observation", "id": "ef", "category": category("vital-sign")});
        assert!(vital_sign(&synthea_spelling).is_some());
    }
}
