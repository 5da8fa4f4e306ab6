// Live reads (issue 21): `client.live { ... }` yields the current answer, then again after a sync that changes it and
// after a patient switch, as Room's queries do on Android; while locked it yields nothing.
import ChartLinkKit
import Foundation
import XCTest

/// Collects what a live read yields, from a Task of its own.
final class LiveCollector<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [T] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncThrowingStream<T, Error>) {
        task = Task {
            do {
                for try await value in stream {
                    self.append(value)
                }
            } catch {}
        }
    }

    private func append(_ value: T) {
        lock.lock()
        seen.append(value)
        lock.unlock()
    }

    var values: [T] {
        lock.lock()
        defer { lock.unlock() }
        return seen
    }

    /// Waits (at most 10 s) until a value matches.
    func await(_ what: String, _ match: (T) -> Bool) async throws -> T {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let hit = values.last(where: match) { return hit }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw TestSetupError("no \(what) within 10 s; saw \(values.count) values")
    }

    func stop() { task?.cancel() }
}

struct Answer: Equatable, Sendable {
    let patient: String?
    let labs: Int
}

final class LiveReadTests: XCTestCase {
    func testALiveReadYieldsAgainAfterASyncAndASwitchAndNothingWhileLocked() async throws {
        let browser = BrowserQueue(
            PortalBrowser("maria", "maria-demo", patient: "maria-garcia"),
            PortalBrowser("maria", "maria-demo", patient: "leo-garcia"))
        let c = try client(browser: browser)
        let maria = try await c.link(fhirBase: try Sandbox.fhirBase())
        let leo = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: maria.id)
        _ = try await c.sync(accountId: leo.id)
        _ = try await c.switchPatient(contextId: maria.id)

        let live = LiveCollector(c.live { client in
            Answer(patient: try await client.activePatient()?.name, labs: try await client.labResults().count)
        })
        defer { live.stop() }
        let first = try await live.await("Maria's labs") { $0.patient == "Maria Garcia" }
        XCTAssertGreaterThan(first.labs, 0)

        // The provider files a new result a minute later (so it is newer than the last sync's cursor, which has a
        // second's precision); the next sync brings it and the live read yields again.
        try await Sandbox.admin("POST", "/clock/advance", json: #"{"seconds": 60}"#)
        addTeardownBlock { try? await Sandbox.admin("POST", "/clock/advance", json: #"{"seconds": -60}"#) }
        try await Sandbox.admin("PUT", "/resources/Observation/live-swift-lab", json: """
            {"resourceType": "Observation", "id": "live-swift-lab", "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
             "code": {"coding": [{"system": "http://loinc.org", "code": "99323-6", "display": "Live Swift lab"}]},
             "subject": {"reference": "Patient/maria-garcia"}, "effectiveDateTime": "2026-12-01",
             "valueQuantity": {"value": 2.5, "unit": "mg/dL"}}
            """)
        addTeardownBlock { try? await Sandbox.admin("DELETE", "/resources/Observation/live-swift-lab") }
        _ = try await c.sync(accountId: maria.id)
        let afterSync = try await c.labResults().count
        XCTAssertEqual(afterSync, first.labs + 1, "the sync brought the new result")
        _ = try await live.await("the synced result") { $0.patient == "Maria Garcia" && $0.labs == first.labs + 1 }

        // A switch yields the other patient's answer.
        _ = try await c.switchPatient(contextId: leo.id)
        _ = try await live.await("Leo's record") { $0.patient == "Leo Garcia" }

        // Locked: reads throw Locked and nothing is yielded; after unlock the stream is still alive.
        try c.lock()
        let whileLocked = live.values.count
        do {
            _ = try await c.sync(accountId: leo.id)
            XCTFail("a locked sync must throw")
        } catch ChartLinkError.Locked {}
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(live.values.count, whileLocked, "nothing is yielded while locked")
        try c.unlock()
        _ = try await c.switchPatient(contextId: maria.id)
        _ = try await live.await("Maria again") { $0.patient == "Maria Garcia" && $0.labs == first.labs + 1 }
    }
}
