// The record kinds issue 21 added, read through the FFI: what the patient was billed (ExplanationOfBenefit, Claim),
// imaging studies, the reason on a prescription, and family history (added later, as one line of core's lists
// table). The demo families have none, so the provider files them (the sandbox's admin API) before the sync.
import ChartLinkKit
import Foundation
import XCTest

final class BillingImagingTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    private let filed = [
        ("ExplanationOfBenefit", "swift-eob"), ("Claim", "swift-claim"), ("ImagingStudy", "swift-img"),
        ("Condition", "swift-reason"), ("MedicationRequest", "swift-rx"), ("FamilyMemberHistory", "swift-fmh"),
    ]

    override func tearDown() async throws {
        for (type, id) in filed {
            try? await Sandbox.admin("DELETE", "/resources/\(type)/\(id)")
        }
    }

    func testBillingImagingAndThePrescriptionReasonCrossTheFFI() async throws {
        let patient = #""patient": {"reference": "Patient/daniel-chen"}"#
        try await Sandbox.admin("PUT", "/resources/ExplanationOfBenefit/swift-eob", json: """
            {"resourceType": "ExplanationOfBenefit", "id": "swift-eob", "status": "active", "outcome": "complete", \(patient),
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
             "billablePeriod": {"start": "2026-10-02"}, "insurer": {"display": "Acme Health"},
             "provider": {"display": "Dr. Anna Lee"}, "claim": {"reference": "Claim/swift-claim"},
             "item": [{"productOrService": {"text": "Office visit"}}],
             "total": [{"category": {"coding": [{"code": "submitted"}], "text": "Submitted Amount"}, "amount": {"value": 180, "currency": "USD"}},
                       {"category": {"coding": [{"code": "memberliability"}]}, "amount": {"value": 25.5, "currency": "USD"}}],
             "payment": {"amount": {"value": 154.5, "currency": "USD"}}}
            """)
        try await Sandbox.admin("PUT", "/resources/Claim/swift-claim", json: """
            {"resourceType": "Claim", "id": "swift-claim", "status": "active", \(patient), "created": "2026-10-02",
             "type": {"coding": [{"code": "professional"}]}, "provider": {"display": "Good Health Clinic"},
             "item": [{"productOrService": {"text": "Office visit"}}], "total": {"value": 180, "currency": "USD"}}
            """)
        try await Sandbox.admin("PUT", "/resources/ImagingStudy/swift-img", json: """
            {"resourceType": "ImagingStudy", "id": "swift-img", "status": "available",
             "subject": {"reference": "Patient/daniel-chen"}, "started": "2026-10-02T09:00:00Z", "numberOfSeries": 1,
             "series": [{"uid": "1.2.3", "modality": {"code": "CR", "display": "Computed Radiography"},
                         "bodySite": {"display": "Chest"}, "numberOfInstances": 2}]}
            """)
        try await Sandbox.admin("PUT", "/resources/Condition/swift-reason", json: """
            {"resourceType": "Condition", "id": "swift-reason", "subject": {"reference": "Patient/daniel-chen"},
             "code": {"text": "Swift pangolin bronchitis"}, "recordedDate": "2026-10-02"}
            """)
        try await Sandbox.admin("PUT", "/resources/MedicationRequest/swift-rx", json: """
            {"resourceType": "MedicationRequest", "id": "swift-rx", "status": "active", "intent": "order",
             "subject": {"reference": "Patient/daniel-chen"}, "medicationCodeableConcept": {"text": "Swift amoxicillin"},
             "authoredOn": "2026-10-02", "reasonReference": [{"reference": "Condition/swift-reason"}]}
            """)

        // A kind added later as one line of core's lists table: its read is generated in Swift too.
        try await Sandbox.admin("PUT", "/resources/FamilyMemberHistory/swift-fmh", json: """
            {"resourceType": "FamilyMemberHistory", "id": "swift-fmh", "status": "completed", "date": "2026-09-01",
             "patient": {"reference": "Patient/daniel-chen"}, "relationship": {"text": "Father"},
             "condition": [{"code": {"text": "Swift ibis hypertension"}, "onsetAge": {"value": 45, "unit": "a"}}]}
            """)

        let c = try client(browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)

        let eobs = try await c.explanationsOfBenefit()
        let eob = try XCTUnwrap(eobs.first { $0.id == "swift-eob" })
        XCTAssertEqual(eob.kind, "professional")
        XCTAssertEqual(eob.insurer, "Acme Health")
        XCTAssertEqual(eob.services, ["Office visit"])
        XCTAssertEqual(eob.totals.map(\.category), ["Submitted Amount", "memberliability"])
        XCTAssertEqual(eob.payment?.text, "154.50 USD")
        XCTAssertEqual(eob.patientPays?.value, 25.5)
        XCTAssertEqual(eob.claimId, "swift-claim")
        XCTAssertEqual(eob.date?.text, "2026-10-02")

        let claims = try await c.claims()
        let claim = try XCTUnwrap(claims.first { $0.id == "swift-claim" })
        XCTAssertEqual(claim.total?.text, "180.00 USD")
        XCTAssertEqual(claim.provider, "Good Health Clinic")

        let studies = try await c.imagingStudies()
        let study = try XCTUnwrap(studies.first { $0.id == "swift-img" })
        XCTAssertEqual(study.name, "Computed Radiography")
        XCTAssertEqual(study.bodySites, ["Chest"])
        XCTAssertEqual(study.seriesCount, 1)
        XCTAssertEqual(study.instanceCount, 2)

        let meds = try await c.medications()
        let rx = try XCTUnwrap(meds.first { $0.id == "swift-rx" })
        XCTAssertEqual(rx.reason, ["Swift pangolin bronchitis"])
        XCTAssertEqual(rx.reasonIds, ["swift-reason"])

        let history = try await c.familyHistory()
        let father = try XCTUnwrap(history.first { $0.id == "swift-fmh" })
        XCTAssertEqual(father.relationship, "Father")
        XCTAssertEqual(father.conditions.map(\.name), ["Swift ibis hypertension"])
        XCTAssertEqual(father.conditions.first?.onset, "at 45 years")
        let identified: [String] = history.map(\.id) // Identifiable, generated
        XCTAssertTrue(identified.contains("swift-fmh"))
        let before = try await c.familyHistory(query: RecordQuery(to: "2025"))
        XCTAssertFalse(before.contains { $0.id == "swift-fmh" })
        // By id, typed: what a "what's new" row opens.
        guard case .familyHistory(let opened)? = try await c.record(resourceType: "FamilyMemberHistory", id: "swift-fmh")
        else { return XCTFail("the family history did not open") }
        XCTAssertEqual(opened, father)
        guard case .explanationOfBenefit(let bill)? = try await c.record(resourceType: "ExplanationOfBenefit", id: "swift-eob")
        else { return XCTFail("the bill did not open") }
        XCTAssertEqual(bill, eob)
        let nobody = try await c.record(resourceType: "Claim", id: "swift-nobody")
        XCTAssertNil(nobody)
        c.close()
    }
}
