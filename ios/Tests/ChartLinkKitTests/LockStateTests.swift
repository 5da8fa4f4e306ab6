// The lock and the observable state: `lockStates` and `activePatientStates` start with the current value; the idle
// lock with a clock moved by hand; a client started locked and opened by `unlockAsync()`.
import ChartLinkKit
import Foundation
import XCTest

final class LockStateTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    func testLockStatesStartWithTheCurrentValueThenFollowTheLock() async throws {
        let c = try client()
        let states = c.lockStates
        try c.lock()
        try c.unlock()
        let seen = await first(3, of: states)
        XCTAssertEqual(seen, [nil, .explicit, nil], "the current value (unlocked), then locked, then unlocked")

        // A stream taken later starts with the state as it is then.
        try c.lock()
        let later = await first(1, of: c.lockStates)
        XCTAssertEqual(later, [.explicit])

        // A client started locked starts with a reason.
        let startedLocked = try client(startLocked: true)
        let initially = await first(1, of: startedLocked.lockStates)
        XCTAssertEqual(initially.count, 1)
        XCTAssertNotNil(initially.first ?? nil, "started locked")
    }

    func testActivePatientStatesStartWithTheCurrentValueThenFollowLockAndSync() async throws {
        let c = try client(browser: PortalBrowser("maria", "maria-demo", patient: "maria-garcia"))
        let before = await first(1, of: c.activePatientStates)
        XCTAssertEqual(before.count, 1)
        XCTAssertNil(before.first ?? nil, "nobody linked yet")

        let own = try await c.link(fhirBase: try Sandbox.fhirBase())
        // Each step waits for the stream's value: the patient is read after the event, off the event's thread.
        let states = Collector(c.activePatientStates)
        defer { states.stop() }
        let linked = await states.values(atLeast: 1)
        XCTAssertEqual(linked.first??.accountIds, [own.id], "the first link becomes the active patient")
        _ = try await c.sync(accountId: own.id)
        let synced = await states.values(atLeast: 2)
        XCTAssertEqual(synced.last??.name, "Maria Garcia", "the sync brought her name")
        try c.lock()
        let locked = await states.values(atLeast: 3)
        XCTAssertEqual(locked.count, 3)
        XCTAssertNil(locked.last ?? nil, "whose record it is is not shown while locked")
        try await c.unlockAsync()
        let unlocked = await states.values(atLeast: 4)
        XCTAssertEqual(unlocked.map { $0?.name }, [linked.first??.name, "Maria Garcia", nil, "Maria Garcia"])

        _ = try await c.unlink(accountId: own.id)
        let after = await first(1, of: c.activePatientStates)
        XCTAssertEqual(after.count, 1)
        XCTAssertNil(after.first ?? nil)
    }

    func testTheIdleLockWithAClockMovedByHand() async throws {
        let clock = ManualClock()
        let c = try client(
            config(lockTimeoutSeconds: 60, lockWarningSeconds: 30, backgroundGraceSeconds: 30),
            browser: PortalBrowser.daniel(), clock: clock)
        let recorder = Recorder(c)
        defer { recorder.stop() }
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)
        XCTAssertNil(c.locked())

        // The idle timer ticks on the runtime: a warning arrives while nobody calls the SDK.
        let timer = try c.startIdleTimer()
        XCTAssertTrue(timer.isActive())
        clock.advance(seconds: 35)
        let warning = try await recorder.await("a lock warning from the timer", timeout: 4) { $0.isLockWarning }
        if case .lockWarning(let remainingMs) = warning {
            XCTAssertTrue((1...30_000).contains(remainingMs), "\(remainingMs)")
        }
        // Cancelled, it ticks no more: past the timeout no Locked event arrives by itself...
        timer.cancel()
        XCTAssertFalse(timer.isActive())
        try await Task.sleep(nanoseconds: 200_000_000)  // a tick already under way when cancel() returned may finish
        let before = recorder.events.count
        clock.advance(seconds: 60)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        XCTAssertFalse(recorder.events.dropFirst(before).contains { $0.lockReason != nil }, "a cancelled timer ticked")
        // ...until the app asks.
        XCTAssertEqual(c.locked(), .idle)
        _ = try await recorder.await("the idle lock") { $0 == .locked(reason: .idle) }
        try await c.unlockAsync()

        // Activity restarts the idle time.
        clock.advance(seconds: 50)
        c.recordActivity()
        clock.advance(seconds: 50)
        XCTAssertNil(c.locked(), "50 s since the last activity")

        // The shell's lifecycle: foreground starts the timer, background stops it and starts the grace period.
        c.onForeground()
        XCTAssertTrue(c.idleTimerRunning)
        c.onBackground()
        XCTAssertFalse(c.idleTimerRunning)
        clock.advance(seconds: 31)
        c.onForeground()
        XCTAssertEqual(c.locked(), .background)
        c.close()
        XCTAssertFalse(c.idleTimerRunning)
    }

    func testStartedLockedTheStoreKeyIsReadOnlyByUnlockAsync() async throws {
        let dir = try temporaryDirectory(self, "locked")
        let cfg = config(dataDir: dir.path)
        let store = MemorySecureStore()
        let first = try client(cfg, store: store, browser: PortalBrowser.daniel())
        let account = try await first.link(fhirBase: try Sandbox.fhirBase())
        _ = try await first.sync(accountId: account.id)
        first.close()

        // Built locked (the shell's default), the client reads no store key: no Face ID prompt while the app starts.
        let counting = CountingStore(store)
        let sdk = try ChartLinkClient(config: cfg, secureStore: counting)
        XCTAssertNotNil(sdk.locked())
        XCTAssertFalse(counting.read.contains("chartlink/store-key"), "the store key was read at start")
        await assertThrowsChartLink("reads while started locked", { $0.isLocked }) { _ = try await sdk.labResults() }

        try await sdk.unlockAsync()
        XCTAssertTrue(counting.read.contains("chartlink/store-key"))
        XCTAssertNil(sdk.locked())
        _ = try await sdk.switchPatient(contextId: account.id)
        let labs = try await sdk.labResults()
        XCTAssertFalse(labs.isEmpty)
        sdk.close()

        // Another key under the store key's name (a restored phone, a re-enrolled Face ID): the storage error says
        // which, as data, and nothing is deleted.
        let right = try XCTUnwrap(try store.get(key: "chartlink/store-key"))
        try store.put(key: "chartlink/store-key", value: Data(repeating: 7, count: 32))
        let wrong = try ChartLinkClient(config: cfg, secureStore: store)
        let error = await assertThrowsChartLink("a wrong store key", { $0.isStorage }) { try await wrong.unlockAsync() }
        guard case .Storage(let kind, _) = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(kind, .wrongKey)
        XCTAssertEqual(error?.userMessage, "The health records on this device can no longer be opened. Start over to link again.")
        wrong.close()
        try store.put(key: "chartlink/store-key", value: right)
        let again = try ChartLinkClient(config: cfg, secureStore: store)
        try await again.unlockAsync()
        _ = try await again.switchPatient(contextId: account.id)
        let intact = try await again.labResults()
        XCTAssertEqual(intact, labs, "the record is intact")
    }

    func testEventsFanOutToEveryStreamAndStreamsGoAway() async throws {
        let c = try client()
        XCTAssertEqual(c.eventCollectors, 0)
        var one: Recorder? = Recorder(c)
        let two = Recorder(c)
        XCTAssertEqual(c.eventCollectors, 2)
        try c.lock()
        _ = try await one?.await("locked on the first stream") { $0.lockReason == .explicit }
        _ = try await two.await("locked on the second stream") { $0.lockReason == .explicit }
        one?.stop()
        one = nil
        for _ in 0..<100 where c.eventCollectors != 1 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(c.eventCollectors, 1, "a stream whose consumer stopped is unregistered")
        two.stop()
    }
}

/// A `SecureStore` that records which keys were read.
final class CountingStore: SecureStore, @unchecked Sendable {
    private let inner: SecureStore
    private let lock = NSLock()
    private var reads: [String] = []

    init(_ inner: SecureStore) { self.inner = inner }

    var read: [String] { lock.locked { reads } }

    func get(key: String) throws -> Data? {
        lock.locked { reads.append(key) }
        return try inner.get(key: key)
    }
    func put(key: String, value: Data) throws { try inner.put(key: key, value: value) }
    func delete(key: String) throws { try inner.delete(key: key) }
    func keys(prefix: String) throws -> [String] { try inner.keys(prefix: prefix) }
}
