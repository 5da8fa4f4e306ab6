//! The typed views a patient app shows, one file per record kind, parsed from raw FHIR R4 resources as
//! `serde_json::Value`; the FHIR readers they share (dates, codes, references, names, quantities) live in
//! `fhir.rs`, so a name or a code is read one way everywhere.
//!
//! Real exports are untidy, so every parser is lenient: it returns `None` only when the resource is not its type
//! (or has no id), and otherwise fills what it finds. Names are never empty: `code.text`, else a coding's display,
//! else "code (system)", else a placeholder such as "Unnamed result". Arrays given as a lone object, STU3-style
//! codes where R4 has a CodeableConcept, `_field` primitive extensions and unknown extensions are all tolerated, and
//! no input can make a parser panic.
//!
//! Dates keep the precision the server gave ([`FhirDate`]): "2019-05" stays a month, and [`FhirDate::sort_key`]
//! orders mixed precisions. Every view has a `source` that is left `None` by its parser: the read path fills in
//! which provider it came from.
//!
//! Each kind implements [`View`]: the resource types it is read from, its parser, its order, and (for kinds that
//! connect records: a report's results, a visit's notes) the related types it links within one provider.
//! `ChartLink::records::<V>()` is the one read path. A new list of records is a file here (and its `mod`/`pub use`
//! lines below) with its [`View`] and its one line of text ([`Line`]), a line of `record_lists!` in `kinds.rs`
//! (which generates its reads in core, the FFI and the CLI), and its FFI mirror (docs/architecture.md, "Where a
//! record kind lives").

use serde_json::Value;

mod fhir;
mod line;
mod observations;

mod allergies;
mod appointments;
mod billing;
mod care_plans;
mod care_team;
mod conditions;
mod coverage;
mod devices;
mod documents;
mod family_history;
mod goals;
mod imaging;
mod immunizations;
mod labs;
mod medication_history;
mod medications;
mod patient;
mod procedures;
mod questionnaires;
mod references;
mod reports;
mod service_requests;
mod visits;
mod vitals;

pub use allergies::*;
pub use appointments::*;
pub use billing::*;
pub use care_plans::*;
pub use care_team::*;
pub use conditions::*;
pub use coverage::*;
pub use devices::*;
pub use documents::*;
pub use family_history::*;
pub use fhir::{CodeRef, FhirDate, Quantity};
pub use goals::*;
pub use imaging::*;
pub use immunizations::*;
pub use labs::*;
pub use line::{Line, flag_text, truncate, value_text};
pub use medication_history::*;
pub use medications::*;
pub use observations::*;
pub use patient::*;
pub use procedures::*;
pub use questionnaires::*;
pub use references::{Names, REFERENCED_TYPES, name_of, unnamed_references};
pub use reports::*;
pub use service_requests::*;
pub use visits::*;

pub(crate) use fhir::{category_codes, concept_name, first, first_date, preferred_code, string};
pub(crate) use labs::lab_brief;

/// How a list of one kind is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By [`View::date`], newest first; undated last.
    NewestFirst,
    /// By [`View::date`], soonest first; undated first (appointments).
    SoonestFirst,
    /// As stored (allergies, the problem list).
    AsStored,
}

/// Other resources of the same provider a view connects its records to, by type (see [`View::RELATED`]).
#[derive(Debug, Default)]
pub struct Related {
    by_type: Vec<(String, Vec<Value>)>,
}

impl Related {
    /// Adds the resources of one type.
    pub fn insert(&mut self, resource_type: &str, resources: Vec<Value>) {
        self.by_type.push((resource_type.to_owned(), resources));
    }

    /// The resources of a type (empty when none were given).
    pub fn of(&self, resource_type: &str) -> &[Value] {
        self.by_type
            .iter()
            .find(|(t, _)| t == resource_type)
            .map_or(&[], |(_, v)| v.as_slice())
    }
}

/// A record kind: where it comes from, how it is parsed and ordered, and how it reads in one line ([`Line`]). The read path
/// (`ChartLink::records`) reads [`View::RESOURCE_TYPES`] of each of the active patient's accounts (and only
/// those: every view is scoped to the active patient), parses, links within the account, sets the source and
/// sorts the whole list by [`View::ORDER`].
pub trait View: Sized + Line {
    /// The FHIR resource types the records are read from.
    const RESOURCE_TYPES: &'static [&'static str];
    /// The types [`View::link`] needs, read from the same account.
    const RELATED: &'static [&'static str] = &[];
    /// How the list is ordered.
    const ORDER: Order = Order::NewestFirst;

    /// The record of one resource; `None` when the resource is not of this kind.
    fn parse(resource: &Value) -> Option<Self>;

    /// The record's id (the FHIR resource's, unique within one provider): where a page of a list starts after.
    fn id(&self) -> &str;

    /// The date the list is ordered by.
    fn date(&self) -> Option<&FhirDate>;

    /// Records which provider (FHIR base) the record came from.
    fn set_source(&mut self, source: &str);

    /// Connects the records of one account to the related resources of that account.
    fn link(_records: &mut [Self], _related: &Related) {}
}

/// The records of one account: parsed, linked and labelled with their source (not yet sorted).
pub fn collect<V: View>(resources: &[Value], related: &Related, source: &str) -> Vec<V> {
    let mut out: Vec<V> = resources.iter().filter_map(V::parse).collect();
    V::link(&mut out, related);
    for v in &mut out {
        v.set_source(source);
    }
    out
}

/// Sorts records by their kind's [`View::ORDER`] (stable: equal dates keep their order, so the results of one
/// panel stay in the order the lab listed them).
///
/// The sort itself runs on (date, position) pairs, one instantiation for every kind of record, and the records are
/// then moved into place: a stable sort per record type was ~170 KB of the mobile library.
pub fn sort<V: View>(records: &mut [V]) {
    let newest_first = match V::ORDER {
        Order::NewestFirst => true,
        Order::SoonestFirst => false,
        Order::AsStored => return,
    };
    let mut order: Vec<(Option<i64>, usize)> = records
        .iter()
        .enumerate()
        .map(|(i, v)| (v.date().map(FhirDate::sort_key), i))
        .collect();
    sort_positions(&mut order, newest_first);
    let positions: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    permute(records, &positions);
}

/// Orders (key, position) pairs by key (descending when `descending`), ties by position.
fn sort_positions(order: &mut [(Option<i64>, usize)], descending: bool) {
    if descending {
        order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    } else {
        order.sort_unstable();
    }
}

/// Moves `records[positions[k]]` to slot `k` for every `k`, in place (`positions` is a permutation).
fn permute<V>(records: &mut [V], positions: &[usize]) {
    let mut placed = vec![false; records.len()];
    for start in 0..records.len() {
        if placed[start] {
            continue;
        }
        let mut slot = start;
        loop {
            placed[slot] = true;
            let from = positions[slot];
            if from == start {
                break;
            }
            records.swap(slot, from);
            slot = from;
        }
    }
}

/// Implements [`View`] for a record struct with `source: Option<String>` and a date field.
macro_rules! view {
    ($ty:ty, [$($rt:literal),+], $parse:path, $date:ident $(, $order:ident)?) => {
        impl $crate::views::View for $ty {
            const RESOURCE_TYPES: &'static [&'static str] = &[$($rt),+];
            $(const ORDER: $crate::views::Order = $crate::views::Order::$order;)?
            fn parse(resource: &serde_json::Value) -> Option<Self> {
                $parse(resource)
            }
            fn id(&self) -> &str {
                &self.id
            }
            fn date(&self) -> Option<&$crate::views::FhirDate> {
                self.$date.as_ref()
            }
            fn set_source(&mut self, source: &str) {
                self.source = Some(source.to_owned());
            }
        }
    };
}
pub(crate) use view;

#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used)]

    use super::fhir::LOINC;
    use super::*;
    use serde_json::json;

    pub fn d(s: &str) -> FhirDate {
        FhirDate::parse(s).unwrap()
    }

    pub fn q(value: f64, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: Some(unit.into()),
            comparator: None,
        }
    }

    pub fn lab_concept(code: &str, display: &str) -> Value {
        json!({"coding": [{"system": LOINC, "code": code, "display": display}], "text": display})
    }

    pub fn category(code: &str) -> Value {
        json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn no_input_panics() {
        let inputs = [
            json!(null),
            json!(1),
            json!("Observation"),
            json!([]),
            json!({}),
            json!({"resourceType": 3, "id": 4}),
        ];
        // Every type ChartLink reads (a new one joins the table, and so this test), and Binary.
        let types: Vec<&str> = crate::kinds::RESOURCE_KINDS
            .iter()
            .map(|k| k.resource_type)
            .collect();
        // Every field the parsers read, set to values of the wrong shape.
        let odd = [
            json!(null),
            json!(7),
            json!("x"),
            json!([1, "a", null, {}]),
            json!({"coding": 5, "text": []}),
            json!(true),
        ];
        let fields = [
            "id",
            "code",
            "category",
            "valueQuantity",
            "valueString",
            "valueCodeableConcept",
            "valueBoolean",
            "valueInteger",
            "component",
            "interpretation",
            "referenceRange",
            "effectiveDateTime",
            "effectivePeriod",
            "issued",
            "status",
            "reaction",
            "clinicalStatus",
            "recordedDate",
            "criticality",
            "medicationCodeableConcept",
            "medicationReference",
            "contained",
            "dosageInstruction",
            "requester",
            "authoredOn",
            "dispenseRequest",
            "vaccineCode",
            "occurrenceDateTime",
            "occurrenceString",
            "lotNumber",
            "onsetDateTime",
            "abatementDateTime",
            "type",
            "class",
            "period",
            "participant",
            "location",
            "serviceProvider",
            "reasonCode",
            "reasonReference",
            "content",
            "context",
            "description",
            "date",
            "start",
            "end",
            "serviceType",
            "appointmentType",
            "name",
            "telecom",
            "address",
            "identifier",
            "birthDate",
            "gender",
            "data",
            "contentType",
            "performedDateTime",
            "performedPeriod",
            "performer",
            "bodySite",
            "outcome",
            "encounter",
            "result",
            "conclusion",
            "conclusionCode",
            "activity",
            "addresses",
            "title",
            "target",
            "lifecycleStatus",
            "achievementStatus",
            "managingOrganization",
            "udiCarrier",
            "deviceName",
            "payor",
            "relationship",
            "subscriberId",
            "quantity",
            "daysSupply",
            "authorizingPrescription",
            "dosage",
            "effectivePeriod",
            "item",
            "questionnaire",
            "_questionnaire",
            "authored",
            "billablePeriod",
            "created",
            "insurer",
            "provider",
            "insurance",
            "total",
            "payment",
            "claim",
            "started",
            "numberOfSeries",
            "numberOfInstances",
            "series",
            "modality",
            "procedureCode",
        ];
        let mut all = inputs.to_vec();
        for ty in types {
            for v in &odd {
                let mut r = json!({"resourceType": ty, "id": "x"});
                for f in fields.iter().filter(|f| **f != "id") {
                    r[*f] = v.clone();
                }
                all.push(r);
            }
        }
        for r in &all {
            let _ = (
                lab_result(r),
                vital_sign(r),
                allergy(r),
                medication(r),
                immunization(r),
                problem(r),
            );
            let _ = (
                visit(r),
                document(r),
                appointment(r),
                demographics(r),
                document_content(r),
            );
            let _ = (
                other_observation(r),
                social_history(r),
                procedure(r),
                diagnostic_report(r),
                care_plan(r),
                goal(r),
                care_team(r),
                device(r),
            );
            let _ = (
                service_request(r),
                coverage(r),
                medication_dispense(r),
                medication_statement(r),
                questionnaire_response(r),
                lab_brief(r).map(|(b, _)| decode_brief(&b)),
            );
            let _ = (explanation_of_benefit(r), claim(r));
            for view in [
                lab_result(r).map(|x| x.name),
                allergy(r).map(|x| x.substance),
                medication(r).map(|x| x.name),
                immunization(r).map(|x| x.vaccine),
                problem(r).map(|x| x.name),
                visit(r).map(|x| x.kind),
                document(r).map(|x| x.title),
                demographics(r).map(|x| x.name),
                procedure(r).map(|x| x.name),
                diagnostic_report(r).map(|x| x.name),
                care_plan(r).map(|x| x.title),
                goal(r).map(|x| x.description),
                care_team(r).map(|x| x.name),
                device(r).map(|x| x.name),
                service_request(r).map(|x| x.name),
                coverage(r).map(|x| x.payer),
                medication_dispense(r).map(|x| x.name),
                medication_statement(r).map(|x| x.name),
                questionnaire_response(r).map(|x| x.title),
                imaging_study(r).map(|x| x.name),
            ]
            .into_iter()
            .flatten()
            {
                assert!(!view.is_empty());
            }
        }
        let mut results = [lab_result(&json!({"resourceType": "Observation", "id": "a"})).unwrap()];
        link_reports(&mut results, &all);
        let mut reports: Vec<DiagnosticReport> = all.iter().filter_map(diagnostic_report).collect();
        link_results(&mut reports, &all);
        let mut meds: Vec<Medication> = all.iter().filter_map(medication).collect();
        link_reasons(&mut meds, &all);
        for m in &meds {
            assert!(m.reason.iter().all(|x| !x.is_empty()));
        }
    }

    /// The sort is stable (equal dates keep the order they came in) and puts every record where its date says.
    #[test]
    fn sorting_is_stable_and_moves_every_record() {
        let positions = [2usize, 0, 1, 4, 3];
        let mut v = vec!["a", "b", "c", "d", "e"];
        super::permute(&mut v, &positions);
        assert_eq!(v, ["c", "a", "b", "e", "d"]);
        let mut order = vec![
            (Some(5), 0),
            (None, 1),
            (Some(5), 2),
            (Some(9), 3),
            (Some(1), 4),
        ];
        super::sort_positions(&mut order, true);
        let idx: Vec<usize> = order.iter().map(|p| p.1).collect();
        assert_eq!(
            idx,
            [3, 0, 2, 4, 1],
            "newest first, ties in arrival order, undated last"
        );
    }
}
