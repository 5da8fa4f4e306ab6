// Cancelling the Swift Task of a long call reaches Rust: the shell hands each call a CancelToken that the Task's
// cancellation handler triggers (UniFFI's Swift async has no cancel path of its own).
import ChartLinkKit
import Foundation
import XCTest

final class CancellationTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    override func tearDown() async throws {
        // The latency below is the sandbox's; never leave it for the next test.
        try await Sandbox.admin("DELETE", "/faults")
    }

    func testCancellingTheTaskMidSyncStopsRustAndTheNextSyncCompletesTheRecord() async throws {
        let dir = try temporaryDirectory(self, "cancel")
        let c = try client(config(dataDir: dir.path), browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        // Each FHIR request takes 100 ms more, so the Task is cancelled while the sync has queries left.
        try await Sandbox.admin("PUT", "/faults", json: #"{"latency_ms": 100}"#)
        let recorder = Recorder(c)
        defer { recorder.stop() }

        let sync = Task { try await c.sync(accountId: account.id) }
        _ = try await recorder.await("progress with queries left", timeout: 60) {
            guard case .syncProgress(let p) = $0 else { return false }
            return p.queriesDone >= 1 && p.queriesDone < p.queriesTotal
        }
        sync.cancel()
        switch await outcome(of: sync, within: 30) {
        case nil: return XCTFail("the cancelled sync did not return")
        case .success?: XCTFail("the cancelled sync completed")
        case .failure(let error)?:
            XCTAssertTrue((error as? ChartLinkError)?.isCancelled ?? false, "\(error)")
        }
        try await Task.sleep(nanoseconds: 300_000_000)  // events already sent may still be on their way
        let atCancel = progressCount(recorder)
        try await Task.sleep(nanoseconds: 700_000_000)
        XCTAssertEqual(progressCount(recorder), atCancel, "the Rust sync went on after the Task was cancelled")
        XCTAssertFalse(recorder.events.contains { $0.isSyncFinished }, "a cancelled sync reported finished")
        XCTAssertFalse(recorder.events.contains {
            if case .syncProgress(let p) = $0 { return p.queriesDone == p.queriesTotal } else { return false }
        }, "the cancelled sync still finished its last query")

        // Nothing half-written: the store reads, without damaged rows.
        let partial = Set(try await c.labResults().map(\.id))
        XCTAssertTrue(c.takeStoreNotices().isEmpty, "a cancelled sync left damaged rows")

        // A Task cancelled before the call starts never starts it.
        let before = progressCount(recorder)
        let early = Task { () async throws -> SyncReport in
            while !Task.isCancelled { await Task.yield() }
            return try await c.sync(accountId: account.id)
        }
        early.cancel()
        guard let earlyResult = await outcome(of: early, within: 30) else {
            return XCTFail("the call in a cancelled Task did not return")
        }
        XCTAssertTrue(((try? earlyResult.get()) == nil) && isCancelled(earlyResult), "\(earlyResult)")
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(progressCount(recorder), before, "a call in a cancelled Task started")

        // The next sync completes the record and keeps what the cancelled one wrote.
        try await Sandbox.admin("DELETE", "/faults")
        let report = try await c.sync(accountId: account.id)
        XCTAssertEqual(report.accountId, account.id)
        let resumed = try await c.labResults().map(\.id)
        XCTAssertEqual(resumed.count, Set(resumed).count, "no record twice")
        XCTAssertTrue(Set(resumed).isSuperset(of: partial), "the resumed sync kept what the cancelled one wrote")
        XCTAssertFalse(resumed.isEmpty)
        let trend = try await c.labTrend(code: hba1c)
        XCTAssertGreaterThanOrEqual(trend?.points.count ?? 0, 2)
    }

    func testCancellingALinkTaskCancelsTheSwiftBrowser() async throws {
        let browser = HangingBrowser()
        let store = MemorySecureStore()
        let c = try client(store: store, browser: browser)
        let link = Task { try await c.link(fhirBase: try Sandbox.fhirBase()) }
        try await browser.waitUntilOpened()
        link.cancel()
        guard let result = await outcome(of: link, within: 10) else {
            return XCTFail("the cancelled link did not return: the Task's cancellation never reached Rust")
        }
        XCTAssertTrue(isCancelled(result), "\(result)")
        // Rust dropped the browser's future, which cancels the Swift Task that runs `authorize`.
        let deadline = Date().addingTimeInterval(5)
        while !browser.wasCancelled && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertTrue(browser.wasCancelled, "the browser's Task was not cancelled")
        try c.cancelLink()
        XCTAssertTrue(try store.keys(prefix: "chartlink/pending/").isEmpty)
    }

    func testIdleTimerHandlesAndCancelTokensReportCancellation() throws {
        let c = try client()
        let timer = try c.startIdleTimer()
        XCTAssertTrue(timer.isActive())
        timer.cancel()
        timer.cancel()
        XCTAssertFalse(timer.isActive())
        let token = CancelToken()
        XCTAssertFalse(token.isCancelled())
        token.cancel()
        XCTAssertTrue(token.isCancelled())
    }

    private func progressCount(_ recorder: Recorder) -> Int { recorder.events.filter(\.isSyncProgress).count }

    private func isCancelled<T>(_ result: Result<T, Error>) -> Bool {
        if case .failure(let error) = result { return (error as? ChartLinkError)?.isCancelled ?? false }
        return false
    }
}

/// A browser that opens and waits until its Task is cancelled.
final class HangingBrowser: AuthBrowser, @unchecked Sendable {
    private let lock = NSLock()
    private var opened = false
    private var cancelled = false

    var wasCancelled: Bool { lock.locked { cancelled } }

    func authorize(url: String, redirectUri: String) async throws -> String {
        lock.locked { opened = true }
        do {
            while true { try await Task.sleep(nanoseconds: 10_000_000) }
        } catch {
            lock.locked { cancelled = true }
            throw BrowserError.Cancelled
        }
    }

    func waitUntilOpened() async throws {
        let deadline = Date().addingTimeInterval(10)
        while !lock.locked({ opened }) {
            guard Date() < deadline else { throw TestSetupError("the browser never opened") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}
