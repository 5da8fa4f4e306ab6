// Typed errors: every failure arrives as a `ChartLinkError` case with a `userMessage` to show.
import ChartLinkKit
import Foundation
import XCTest

final class ErrorTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    func testABadConfigurationIsInvalidInput() async throws {
        let emptyClient = await assertThrowsChartLink("empty clientId", { $0.isInvalidInput }) {
            _ = try client(config(clientId: ""))
        }
        await assertThrowsChartLink("lockTimeoutSeconds 0", { $0.isInvalidInput }) {
            _ = try client(config(lockTimeoutSeconds: 0))
        }
        // InvalidInput's message is the user message itself (the app's mistake, said plainly).
        if case .InvalidInput(let message) = emptyClient {
            XCTAssertFalse(message.isEmpty)
            XCTAssertEqual(emptyClient?.userMessage, message)
        }
    }

    func testBadFhirBasesAreInvalidInputAndAnUnreachableServerIsNetwork() async throws {
        let c = try client(browser: ClosedBrowser())
        // Plain http is for this computer only: a bad FHIR base is the app's mistake.
        let http = await assertThrowsChartLink("http to another host", { $0.isInvalidInput }) {
            _ = try await c.link(fhirBase: "http://fhir.example.org/R4")
        }
        XCTAssertFalse(http?.userMessage.isEmpty ?? true)
        await assertThrowsChartLink("not a URL", { $0.isInvalidInput }) {
            _ = try await c.link(fhirBase: "not a url")
        }
        let network = await assertThrowsChartLink("nothing listens on port 9", { $0.isNetwork }) {
            _ = try await c.link(fhirBase: "http://127.0.0.1:9/fhir")
        }
        guard case .Network(let kind, let retryAfterSeconds, _) = network else {
            return XCTFail("\(String(describing: network))")
        }
        XCTAssertEqual(kind, .unreachable, "how it failed crosses as data")
        XCTAssertNil(retryAfterSeconds)
        XCTAssertTrue(network?.userMessage.hasPrefix("The provider could not be reached") ?? false, "\(String(describing: network))")
        XCTAssertFalse(network?.userMessage.contains("Network(") ?? true, "no debug rendering")
    }

    func testClosingTheBrowserIsCancelledAndLeavesNothingPending() async throws {
        let store = MemorySecureStore()
        let c = try client(store: store, browser: ClosedBrowser())
        let error = await assertThrowsChartLink("the user closed the browser", { $0.isCancelled }) {
            _ = try await c.link(fhirBase: try Sandbox.fhirBase())
        }
        XCTAssertEqual(error?.userMessage, "Cancelled.")
        XCTAssertTrue(try store.keys(prefix: "chartlink/pending/").isEmpty, "the pending login was dropped")
        XCTAssertTrue(try c.accounts().isEmpty)
    }

    func testADeniedConsentIsAuthorization() async throws {
        // The patient logs in at the portal and presses Deny: the redirect carries error=access_denied.
        let c = try client(browser: PortalBrowser("daniel", "daniel-demo", patient: "daniel-chen", allow: false))
        let error = await assertThrowsChartLink("error=access_denied", { $0.isAuthorization }) {
            _ = try await c.link(fhirBase: try Sandbox.fhirBase())
        }
        guard case .Authorization(let reason, _)? = error else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(reason, .denied, "the patient said no")
        XCTAssertEqual(error?.userMessage, "You chose not to share your records with this app.")
        XCTAssertTrue(try c.accounts().isEmpty)
    }

    func testNoBrowserUnknownAccountsAndNoPatientAreInvalidInput() async throws {
        let c = try client()
        await assertThrowsChartLink("no AuthBrowser", { $0.isInvalidInput }) {
            _ = try await c.link(fhirBase: try Sandbox.fhirBase())
        }
        await assertThrowsChartLink("switch to nobody", { $0.isInvalidInput }) {
            _ = try await c.switchPatient(contextId: "nobody")
        }
        await assertThrowsChartLink("sync an unknown account", { $0.isInvalidInput }) {
            _ = try await c.sync(accountId: "no-such-account")
        }
        await assertThrowsChartLink("no patient is active", { $0.isInvalidInput }) {
            _ = try await c.labResults()
        }
    }

    func testLockedReadsThrowLockedUntilUnlock() async throws {
        let c = try client(browser: PortalBrowser.daniel())
        let recorder = Recorder(c)
        defer { recorder.stop() }
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)
        XCTAssertNil(c.locked())

        try c.lock()
        XCTAssertEqual(c.locked(), .explicit)
        _ = try await recorder.await("locked event") { $0 == .locked(reason: .explicit) }
        let locked = await assertThrowsChartLink("labs while locked", { $0.isLocked }) { _ = try await c.labResults() }
        XCTAssertEqual(locked?.userMessage, "Your health records are locked. Unlock to continue.")
        await assertThrowsChartLink("patients while locked", { $0.isLocked }) { _ = try await c.patients() }
        await assertThrowsChartLink("sync while locked", { $0.isLocked }) { _ = try await c.sync(accountId: account.id) }
        await assertThrowsChartLink("accounts while locked", { $0.isLocked }) { _ = try c.accounts() }

        try await c.unlockAsync()
        _ = try await recorder.await("unlocked event") { $0 == .unlocked }
        XCTAssertNil(c.locked())
        let labs = try await c.labResults()
        XCTAssertFalse(labs.isEmpty, "readable again")
    }

    func testASwiftSecureStoreThatThrowsIsStorage() async throws {
        let refusing = ThrowingStore(SecureStoreError.Failed(reason: "the user dismissed the prompt"))
        let typed = await assertThrowsChartLink("a SecureStoreError", { $0.isStorage }) {
            _ = try client(store: refusing)
        }
        XCTAssertTrue(typed?.userMessage.contains("dismissed") ?? false, "\(String(describing: typed))")
        XCTAssertTrue(typed?.userMessage.hasPrefix("Secure storage problem: ") ?? false)
        guard case .Storage(let kind, _) = typed else { return XCTFail("\(String(describing: typed))") }
        XCTAssertEqual(kind, .secureStore)
        XCTAssertGreaterThan(refusing.attempts, 0, "the SDK called the Swift store")

        // Any other Swift error is Storage too; its text (unknown content) is not passed on.
        struct AppBug: Error, CustomStringConvertible { var description: String { "bug in the app: secret-123" } }
        let broken = ThrowingStore(AppBug())
        let untyped = await assertThrowsChartLink("an unexpected Swift error", { $0.isStorage }) {
            _ = try client(store: broken)
        }
        XCTAssertFalse(untyped?.userMessage.contains("secret-123") ?? true)

        // The store key is created once (32 bytes) and read back by a second instance (an app restart).
        let store = MemorySecureStore()
        _ = try client(store: store)
        let key = try XCTUnwrap(try store.get(key: "chartlink/store-key"))
        XCTAssertEqual(key.count, 32)
        _ = try client(store: store)
        XCTAssertEqual(try store.get(key: "chartlink/store-key"), key)
    }

    func testARustPanicArrivesAsInternal() async throws {
        let sync = await assertThrowsChartLink("a panic in a sync call", { $0.isInternal }) { try debugPanicForTest() }
        if case .Internal(let message) = sync {
            XCTAssertFalse(message.contains("deliberate"), "the panic text stays in Rust")
        }
        XCTAssertEqual(sync?.userMessage, "Something went wrong inside ChartLink. Please try again.")
        await assertThrowsChartLink("a panic in an async call", { $0.isInternal }) { try await debugPanicAsyncForTest() }
        // The library is still fine afterwards.
        XCTAssertNil(try client().locked())
    }

    func testEveryErrorHasAUserMessageWithoutItsCaseName() {
        let reasons: [AuthorizationReason] = [
            .denied, .expired, .noLinkInProgress, .mismatch, .refused, .invalidAnswer, .browserFailed,
        ]
        let networkKinds: [NetworkKind] = [.unreachable, .certificate, .throttled, .timedOut]
        let storageKinds: [StorageKind] = [.busy, .wrongKey, .newerVersion, .damaged, .full, .secureStore, .other]
        let all: [ChartLinkError] = [
            .Discovery("m"), .AccessRevoked, .RelinkNeeded, .Locked, .Server(status: 404, detail: "m"),
            .InvalidInput("the clientId is empty"), .Cancelled, .Internal("m"),
        ] + reasons.map { .Authorization(reason: $0, detail: "m") }
            + networkKinds.map { .Network(kind: $0, retryAfterSeconds: nil, detail: "m") }
            + [.Network(kind: .throttled, retryAfterSeconds: 30, detail: "m")]
            + storageKinds.map { .Storage(kind: $0, detail: "m") }
        for error in all {
            let name = String(describing: error).prefix(while: { $0 != "(" })
            XCTAssertFalse(error.userMessage.isEmpty, "\(name)")
            XCTAssertFalse(error.userMessage.contains("\(name)("), "\(error.userMessage) shows the case name")
            XCTAssertTrue(error.errorDescription?.contains(name) ?? false, "errorDescription is the debug rendering")
        }
        XCTAssertEqual(Set(all.map(\.userMessage)).count, all.count, "each case says something of its own")
    }
}

/// A Swift `SecureStore` whose every call throws `error`.
final class ThrowingStore: SecureStore, @unchecked Sendable {
    private let error: Error
    private let lock = NSLock()
    private var count = 0

    init(_ error: Error) { self.error = error }

    var attempts: Int { lock.locked { count } }

    private func fail() throws -> Never {
        lock.locked { count += 1 }
        throw error
    }

    func get(key: String) throws -> Data? { try fail() }
    func put(key: String, value: Data) throws { try fail() }
    func delete(key: String) throws { try fail() }
    func keys(prefix: String) throws -> [String] { try fail() }
}
