// Records with an `id` are Identifiable, so SwiftUI lists take them as they are: `List(labs) { lab in ... }`,
// `ForEach(patients) { ... }`. The generated records are immutable structs (`let` fields:
// `generate_immutable_records` in bindings/uniffi.toml); `cargo xtask bindings` checks that every generated record
// with an `id: String` is listed here. `FhirDate` is `Comparable` (generated from its Rust `Ord`).

extension LinkedAccount: Identifiable {}
extension PatientContext: Identifiable {}
extension ClinicalObservation: Identifiable {}
extension DiagnosticReport: Identifiable {}
extension Allergy: Identifiable {}
extension Medication: Identifiable {}
extension Immunization: Identifiable {}
extension Problem: Identifiable {}
extension Procedure: Identifiable {}
extension Visit: Identifiable {}
extension Document: Identifiable {}
extension Appointment: Identifiable {}
extension Demographics: Identifiable {}
extension CarePlan: Identifiable {}
extension Goal: Identifiable {}
extension CareTeam: Identifiable {}
extension Device: Identifiable {}
extension ServiceRequest: Identifiable {}
extension Coverage: Identifiable {}
extension ExplanationOfBenefit: Identifiable {}
extension Claim: Identifiable {}
extension ImagingStudy: Identifiable {}
extension MedicationDispense: Identifiable {}
extension MedicationStatement: Identifiable {}
extension QuestionnaireResponse: Identifiable {}
extension Provider: Identifiable {}
// The FHIR id of a record a sync brought (unique within one account and type; `whatsNew()` lists each once).
extension NewRecord: Identifiable {}
