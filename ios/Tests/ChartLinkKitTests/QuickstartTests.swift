// The README's Swift quickstart (Sources/ChartLinkSample/Quickstart.swift, kept identical to the README by
// `cargo xtask`'s tests) is compiled on every platform; its SDK part also runs here against the sandbox.
import ChartLinkKit
@testable import ChartLinkSample
import Foundation
import XCTest

@MainActor
final class QuickstartTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    func testTheQuickstartLinksSyncsAndReadsLabs() async throws {
        let records = HealthRecords(chartLink: try client(browser: PortalBrowser.daniel()))
        let overview = try await records.linkAndSync(fhirBase: try Sandbox.fhirBase())
        XCTAssertTrue(overview.labs.contains { $0.code == hba1c })
        let again = try await records.chartLink.labResults()
        XCTAssertEqual(overview.labs, again)
        XCTAssertGreaterThanOrEqual(overview.hba1c?.points.count ?? 0, 2)
        XCTAssertEqual(overview.summary.patient?.name, "Daniel Chen")
        let first = try XCTUnwrap(overview.labs.first)
        XCTAssertTrue(HealthRecords.row(first).contains(first.name))
        try records.lockNow()
        let locked = await captured { _ = try await records.chartLink.labResults() }
        XCTAssertEqual(HealthRecords.problem(locked), "Your health records are locked. Unlock to continue.")
        try await records.unlock()
        XCTAssertNil(records.chartLink.locked())

        XCTAssertNil(HealthRecords.problem(ChartLinkError.Cancelled), "a closed sheet says nothing")
        XCTAssertEqual(
            HealthRecords.problem(ChartLinkError.Network(kind: .timedOut, retryAfterSeconds: nil, detail: "timeout")),
            "Try again later: timeout")
        XCTAssertEqual(
            HealthRecords.problem(ChartLinkError.Network(kind: .throttled, retryAfterSeconds: 30, detail: "429")),
            "Try again in 30 s")
        XCTAssertEqual(HealthRecords.describe(.lockWarning(remainingMs: 30_000)), "Locking in 30 s")
        XCTAssertNil(HealthRecords.describe(.unlocked))

        // The provider picker's pieces, on the sandbox's directory.
        let directory = try await loadProviderDirectory(urls: [try Sandbox.url() + "/brands.json"])
        _ = try await directory.checkEndpoints(cancel: nil)
        let sandbox = try XCTUnwrap(directory.search(query: "ChartLink Sandbox", limit: 1).first)
        XCTAssertEqual(HealthRecords.fhirBase(of: sandbox)?.trimmingCharacters(in: CharacterSet(charactersIn: "/")),
                       try Sandbox.fhirBase())
        let offline = try XCTUnwrap(directory.search(query: "Offline Regional", limit: 1).first)
        XCTAssertNil(HealthRecords.fhirBase(of: offline), "a dead endpoint is not offered")
    }

    private func captured(_ body: () async throws -> Void) async -> Error {
        do {
            try await body()
            return TestSetupError("nothing was thrown")
        } catch {
            return error
        }
    }
}
