// The pure logic that left the Apple-only files (AuthRedirect, the background budget, the device configuration,
// the device clock), tested here because Linux compiles it; the Apple files only wrap it.
import ChartLinkKit
import Foundation
import XCTest

final class PortableShellTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    private let authorize = "https://fhir.example.org/oauth2/authorize?client_id=app&state=s1"

    func testACustomSchemeRedirectIsMatchedByItsScheme() throws {
        let checked = try AuthRedirect.check(url: authorize, redirectUri: "MyApp://callback", httpsCallbacks: false)
        XCTAssertEqual(checked.callback, .customScheme("myapp"))
        XCTAssertEqual(checked.authorizeURL.absoluteString, authorize)
        XCTAssertEqual(checked.redirect.absoluteString, "MyApp://callback")
        // The same on iOS 17.4+.
        XCTAssertEqual(
            try AuthRedirect.check(url: authorize, redirectUri: "myapp://callback", httpsCallbacks: true).callback,
            .customScheme("myapp"))
        // A loopback authorization URL (the sandbox) is fine.
        XCTAssertNoThrow(try AuthRedirect.check(
            url: "http://127.0.0.1:8080/oauth2/authorize", redirectUri: "myapp:/cb", httpsCallbacks: false))
    }

    func testAnHttpsRedirectIsMatchedByHostAndPathFromIOS174() throws {
        let deep = try AuthRedirect.check(
            url: authorize, redirectUri: "https://app.example.org/auth/callback?x=1", httpsCallbacks: true)
        XCTAssertEqual(deep.callback, .https(host: "app.example.org", path: "/auth/callback"))
        let root = try AuthRedirect.check(url: authorize, redirectUri: "https://app.example.org", httpsCallbacks: true)
        XCTAssertEqual(root.callback, .https(host: "app.example.org", path: "/"), "an empty path is /")
        // Before 17.4 the sheet cannot match an https redirect: refused before it opens.
        assertFails(authorize, "https://app.example.org/callback", httpsCallbacks: false, saying: "iOS 17.4")
    }

    func testRedirectsTheSheetCannotReturnAreRefusedAsBrowserFailures() {
        assertFails(authorize, "https:///callback", httpsCallbacks: true, saying: "no host")
        assertFails(authorize, "http://app.example.org/callback", httpsCallbacks: true, saying: "http redirect")
        assertFails(authorize, "callback", httpsCallbacks: true, saying: "invalid")
        assertFails(authorize, "", httpsCallbacks: true, saying: "invalid")
        assertFails("not a url", "myapp://callback", httpsCallbacks: true, saying: "invalid")
        assertFails("ftp://fhir.example.org/authorize", "myapp://callback", httpsCallbacks: true, saying: "invalid")
        assertFails("https:///authorize", "myapp://callback", httpsCallbacks: true, saying: "invalid")
    }

    private func assertFails(
        _ url: String, _ redirect: String, httpsCallbacks: Bool, saying: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let checked = try AuthRedirect.check(url: url, redirectUri: redirect, httpsCallbacks: httpsCallbacks)
            XCTFail("\(url) -> \(redirect) was accepted: \(checked.callback)", file: file, line: line)
        } catch BrowserError.Failed(let reason) {
            XCTAssertTrue(reason.contains(saying), "\(reason)", file: file, line: line)
        } catch {
            XCTFail("not BrowserError.Failed: \(error)", file: file, line: line)
        }
    }

    func testTheBackgroundBudget() {
        let normal = ChartLinkBackgroundRefresh.budget(lowPowerMode: false)
        XCTAssertEqual(normal, SyncBudget(maxDurationMs: 25_000, maxBytes: 0, metered: false, lowBattery: false,
                                          minIntervalSeconds: 900))
        let saving = ChartLinkBackgroundRefresh.budget(maxDuration: 10.5, metered: true, lowPowerMode: true)
        XCTAssertEqual(saving.maxDurationMs, 10_500)
        XCTAssertTrue(saving.metered)
        XCTAssertTrue(saving.lowBattery, "Low Power Mode syncs nothing")
        // Nonsense durations stay within what a run can use.
        XCTAssertEqual(ChartLinkBackgroundRefresh.budget(maxDuration: -3, lowPowerMode: false).maxDurationMs, 1_000)
        XCTAssertEqual(ChartLinkBackgroundRefresh.budget(maxDuration: .nan, lowPowerMode: false).maxDurationMs, 25_000)
        XCTAssertEqual(ChartLinkBackgroundRefresh.budget(maxDuration: .infinity, lowPowerMode: false).maxDurationMs,
                       25_000)
        XCTAssertEqual(ChartLinkBackgroundRefresh.defaultIdentifier, "dev.chartlink.sdk.refresh")
    }

    func testTheDeviceConfigurationPutsTheDatabaseInApplicationSupport() throws {
        let support = try temporaryDirectory(self, "support").appendingPathComponent("Application Support")
        let asked = ChartLinkConfig(
            clientId: "my-app", redirectUri: "myapp://callback", appName: "My Health", dataDir: nil,
            lockTimeoutSeconds: 300, lockWarningSeconds: 20, backgroundGraceSeconds: 5,
            revocation: .purgeNow, wanted: [.labResults, .medications])
        var prepared: [URL] = []
        let configured = try ChartLinkClient.deviceConfig(asked, applicationSupport: support) { prepared.append($0) }
        let dir = support.appendingPathComponent("ChartLink", isDirectory: true)
        XCTAssertEqual(configured.dataDir.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                       dir.standardizedFileURL.path)
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory) && isDirectory.boolValue,
                      "created with its parents")
        XCTAssertEqual(prepared.map(\.standardizedFileURL.path), [dir.standardizedFileURL.path],
                       "prepared once (iOS: backup exclusion, file protection)")
        // Every other field is the app's, whatever fields the configuration has.
        let have = Mirror(reflecting: configured).children
        let want = Mirror(reflecting: asked).children
        XCTAssertEqual(have.count, want.count)
        for (field, value) in zip(have, want) where field.label != "dataDir" {
            XCTAssertEqual(String(describing: field.value), String(describing: value.value), field.label ?? "?")
        }

        // An app that names its directory keeps it: nothing is created or prepared.
        let own = try temporaryDirectory(self, "own").appendingPathComponent("records").path
        let kept = try ChartLinkClient.deviceConfig(config(dataDir: own), applicationSupport: support) { _ in
            XCTFail("prepared an app's own directory")
        }
        XCTAssertEqual(kept, config(dataDir: own))
        XCTAssertFalse(FileManager.default.fileExists(atPath: own))

        // The configuration builds a real client whose database lives there.
        let c = try client(configured)
        try c.lock()
        try c.unlock()
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "the database is there")
    }

    func testTheDeviceClockCountsSinceBootAndTheWallClockIsUnixTime() throws {
        let clock = DeviceClock()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        XCTAssertLessThan(abs(clock.nowUnixMs() - now), 1_000)
        let start = clock.monotonicMs()
        XCTAssertGreaterThan(start, 0)
        Thread.sleep(forTimeInterval: 0.05)
        let later = clock.monotonicMs()
        XCTAssertGreaterThanOrEqual(later - start, 50)
        XCTAssertLessThan(later - start, 5_000)
        #if os(Linux)
        // CLOCK_BOOTTIME is what /proc/uptime reports: time since boot, suspend included.
        let uptime = try String(contentsOfFile: "/proc/uptime", encoding: .utf8)
        let seconds = try XCTUnwrap(Double(uptime.split(separator: " ").first ?? ""))
        XCTAssertLessThan(abs(Double(clock.monotonicMs()) / 1000 - seconds), 2, "BOOTTIME is uptime")
        #endif
        // The SDK runs on it: a client with the device clock locks and unlocks.
        let c = try client(clock: clock)
        XCTAssertNil(c.locked())
        try c.lock()
        XCTAssertEqual(c.locked(), .explicit)
    }

    func testTheMemorySecureStore() throws {
        let store = MemorySecureStore()
        XCTAssertNil(try store.get(key: "a/1"))
        try store.put(key: "a/2", value: Data([2]))
        try store.put(key: "a/1", value: Data([1]))
        try store.put(key: "b/1", value: Data([3]))
        try store.put(key: "a/1", value: Data([9]))
        XCTAssertEqual(try store.get(key: "a/1"), Data([9]))
        XCTAssertEqual(try store.keys(prefix: "a/"), ["a/1", "a/2"])
        try store.delete(key: "a/1")
        try store.delete(key: "missing")
        XCTAssertEqual(try store.keys(prefix: ""), ["a/2", "b/1"])
    }
}
