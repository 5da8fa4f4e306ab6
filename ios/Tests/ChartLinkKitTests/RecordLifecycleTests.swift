// A login completed by a fresh client after process death, a locked background sync, merge suggestions across
// two providers, the provider directory.
import ChartLinkKit
import Foundation
import XCTest

final class RecordLifecycleTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    /// How far a test moved the sandbox's clock; put back afterwards (the next login's id_token must not look old).
    private var sandboxClockMoved: Int64 = 0

    override func tearDown() async throws {
        if sandboxClockMoved != 0 {
            try await Sandbox.admin("POST", "/clock/advance", json: #"{"seconds": \#(-sandboxClockMoved)}"#)
            sandboxClockMoved = 0
        }
    }

    func testALinkBegunBeforeProcessDeathIsCompletedByAFreshClient() async throws {
        // The process is killed while the user is at the portal; the redirect restarts it, and a fresh client over
        // the same secure store and files completes the login the first one began.
        let store = MemorySecureStore()
        let dir = try temporaryDirectory(self, "process")
        let cfg = config(dataDir: dir.path)
        let request: AuthorizationRequest
        do {
            let first = try client(cfg, store: store)
            request = try await first.beginLink(fhirBase: try Sandbox.fhirBase())
            first.close()
        }
        XCTAssertEqual(request.redirectUri, "chartlink-demo://callback")
        XCTAssertGreaterThan(request.expiresAtMs, Int64(Date().timeIntervalSince1970 * 1000))
        XCTAssertFalse(try store.keys(prefix: "chartlink/pending/").isEmpty, "the pending login is in the secure store")

        let redirect = try await PortalBrowser.daniel().authorize(url: request.url, redirectUri: request.redirectUri)
        XCTAssertTrue(redirect.hasPrefix("chartlink-demo://callback?"), "the portal hands back the app's redirect")
        do {
            let fresh = try client(cfg, store: store)
            let account = try await fresh.completeLink(redirectUrl: redirect)
            XCTAssertEqual(try fresh.accounts().map(\.id), [account.id])
            XCTAssertEqual(account.patientId, "daniel-chen")
            _ = try await fresh.sync(accountId: account.id)
            let labs = try await fresh.labResults()
            XCTAssertFalse(labs.isEmpty)
            XCTAssertTrue(try store.keys(prefix: "chartlink/pending/").isEmpty, "spent")
            fresh.close()
        }
        // A replayed redirect in yet another process is refused, typed.
        let again = try client(cfg, store: store)
        await assertThrowsChartLink("a replayed redirect", { _ in true }) {
            _ = try await again.completeLink(redirectUrl: redirect)
        }
        XCTAssertEqual(try again.accounts().count, 1, "the account made by the first completion stays")
    }

    func testALockedBackgroundSyncReportsCountsOnlyAndWhatsNewAfterUnlock() async throws {
        let newLab = "bg-swift-lab"
        let newLabName = "Swift okapi antibody"
        let store = MemorySecureStore()
        let clock = ManualClock()
        let dir = try temporaryDirectory(self, "background")
        let cfg = config(dataDir: dir.path)
        let accountId: String
        do {
            let c = try client(cfg, store: store, browser: PortalBrowser.daniel(), clock: clock)
            let account = try await c.link(fhirBase: try Sandbox.fhirBase())
            _ = try await c.sync(accountId: account.id)
            accountId = account.id
            c.close()
        }
        // The provider files a new result an hour later.
        try await Sandbox.admin("POST", "/clock/advance", json: #"{"seconds": 3600}"#)
        sandboxClockMoved += 3600
        clock.advance(seconds: 3600)
        try await Sandbox.admin("PUT", "/resources/Observation/\(newLab)", json: """
            {"resourceType": "Observation", "id": "\(newLab)", "status": "final",
             "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
             "code": {"coding": [{"system": "http://loinc.org", "code": "99322-8", "display": "\(newLabName)"}], "text": "\(newLabName)"},
             "subject": {"reference": "Patient/daniel-chen"}, "effectiveDateTime": "2026-11-30",
             "valueQuantity": {"value": 27.1828, "unit": "mg/dL"}}
            """)

        // The OS starts the app for its refresh task: locked (the shell's default), no store key read.
        let c = try ChartLinkClient(config: cfg, secureStore: store, clock: clock)
        XCTAssertNotNil(c.locked())
        let recorder = Recorder(c)
        defer { recorder.stop() }
        // The budget the iOS refresh task passes (portable: BackgroundBudget.swift). Low Power Mode syncs nothing.
        let lowPower = try await c.backgroundSync(budget: ChartLinkBackgroundRefresh.budget(lowPowerMode: true))
        XCTAssertEqual(lowPower.total, 0)
        XCTAssertEqual(lowPower.accounts.map(\.outcome), [.lowBattery])
        let budget = ChartLinkBackgroundRefresh.budget(lowPowerMode: false)
        XCTAssertEqual(try c.syncDue(budget: budget), [accountId])
        let report = try await c.backgroundSync(budget: budget)
        XCTAssertTrue(report.locked)
        XCTAssertEqual(report.total, 1, "\(report)")
        let news = try XCTUnwrap(report.accounts.first)
        XCTAssertEqual(report.accounts.count, 1)
        XCTAssertEqual(news.accountId, accountId)
        XCTAssertEqual(news.outcome, .synced)
        XCTAssertEqual(news.counts, [KindCount(kind: .labResult, count: 1)])

        // One counts-only event per run: the Low Power Mode run's, then this one's.
        _ = try await recorder.await("the second background sync finished") { _ in
            recorder.events.filter { if case .backgroundSyncFinished = $0 { return true } else { return false } }.count >= 2
        }
        let finished = recorder.events.filter { if case .backgroundSyncFinished = $0 { return true } else { return false } }
        XCTAssertEqual(finished, [.backgroundSyncFinished(report: lowPower), .backgroundSyncFinished(report: report)])
        let event = try XCTUnwrap(finished.last)
        for secret in [newLab, newLabName, "99322-8", "27.1828"] {
            XCTAssertFalse(String(describing: event).contains(secret), "the event names \(secret)")
        }
        XCTAssertFalse(recorder.events.contains { $0.isSyncFinished || $0.isSyncProgress })
        await assertThrowsChartLink("labs while locked", { $0.isLocked }) { _ = try await c.labResults() }
        await assertThrowsChartLink("whatsNew while locked", { $0.isLocked }) { _ = try await c.whatsNew() }
        await assertThrowsChartLink("accounts while locked", { $0.isLocked }) { _ = try c.accounts() }
        XCTAssertTrue(try c.syncDue(budget: budget).isEmpty, "synced just now")

        try await c.unlockAsync()
        let whatsNew = try await c.whatsNew()
        XCTAssertEqual(whatsNew.map(\.id), [newLab])
        XCTAssertEqual(whatsNew.first?.displayName, newLabName)
        XCTAssertEqual(whatsNew.first?.kind, .labResult)
        XCTAssertEqual(whatsNew.first?.date, "2026-11-30")
        _ = try await c.switchPatient(contextId: accountId)
        let labs = try await c.labResults()
        XCTAssertTrue(labs.contains { $0.id == newLab && $0.name == newLabName })
        try await c.markWhatsNewSeen()
        let seen = try await c.whatsNew()
        XCTAssertTrue(seen.isEmpty)
    }

    func testOnePersonAtTwoProvidersIsSuggestedForMergingAndMergedOnConfirm() async throws {
        // Two sandboxes generated from the same seed serve the same family: Daniel linked at both is two patients
        // until the user confirms they are one.
        let (a, b) = (try Sandbox.fhirBase(), try Sandbox.fhirBase("CHARTLINK_SANDBOX_2"))
        XCTAssertNotEqual(a, b)
        let c = try client(browser: BrowserQueue(PortalBrowser.daniel(), PortalBrowser.daniel()))
        for base in [a, b] {
            let account = try await c.link(fhirBase: base)
            _ = try await c.sync(accountId: account.id)
        }
        let before = try await c.patients()
        XCTAssertEqual(before.count, 2, "never merged on a guess")
        let suggestions = try await c.mergeSuggestions()
        XCTAssertEqual(suggestions.count, 1, "\(suggestions.map(\.reason))")
        let suggestion = try XCTUnwrap(suggestions.first)
        XCTAssertEqual(Set(suggestion.contextIds), Set(before.map(\.id)))
        XCTAssertEqual(suggestion.name, "Daniel Chen")
        XCTAssertEqual(suggestion.providers.count, 2)

        let merged = try await c.confirmMerge(contextIds: suggestion.contextIds)
        XCTAssertEqual(merged.accountIds.count, 2)
        let none = try await c.mergeSuggestions()
        XCTAssertTrue(none.isEmpty, "merged already")
        let patients = try await c.patients()
        XCTAssertEqual(patients.count, 1, "one person, linked twice")
        _ = try await c.switchPatient(contextId: merged.id)
        let sources = Set(try await c.immunizations().compactMap(\.source))
        XCTAssertEqual(sources.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) }.sorted(),
                       [a, b].sorted(), "each record keeps its provider")

        // Undo: the two records are two patients again.
        try await c.splitPatient(contextId: merged.id)
        let split = try await c.patients()
        XCTAssertEqual(split.count, 2)
    }

    func testTheProviderDirectorySearchesMarksDeadEndpointsAndStoresThem() async throws {
        let sandbox = try Sandbox.url()
        let cache = try temporaryDirectory(self, "directory")
        let directory = try await loadProviderDirectory(urls: ["\(sandbox)/brands.json"], cacheDir: cache.path)
        XCTAssertGreaterThanOrEqual(directory.providers().count, 3, "\(directory.providers().map(\.name))")
        XCTAssertEqual(directory.search(query: "chartlnk sandbox", limit: 5).first?.name, "ChartLink Sandbox Health",
                       "a typo")
        XCTAssertEqual(directory.search(query: "ORMC", limit: 5).first?.name, "Offline Regional Medical Center",
                       "an alias")
        XCTAssertTrue(directory.search(query: "springfield", limit: 5).contains { $0.name == "ChartLink Sandbox Health" },
                      "a city")
        XCTAssertTrue(directory.search(query: "zzzz qqqq", limit: 5).isEmpty)
        XCTAssertTrue(directory.providers().flatMap(\.endpoints).allSatisfy { $0.status == .unknown })

        let failed = try await directory.checkEndpoints(cancel: nil)
        XCTAssertEqual(failed, 1, "the offline provider's endpoint is dead")
        let byName = Dictionary(directory.providers().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byName["Offline Regional Medical Center"]?.endpoints.map(\.status), [.discoveryFailed])
        let working = try XCTUnwrap(byName["ChartLink Sandbox Health"]?.endpoints.first)
        XCTAssertEqual(working.status, .working)
        XCTAssertEqual(working.fhirBase.trimmingCharacters(in: CharacterSet(charactersIn: "/")), try Sandbox.fhirBase(),
                       "pass it to link()")

        // Stored: the next load has the marks without checking again.
        let again = try await loadProviderDirectory(urls: ["\(sandbox)/brands.json"], cacheDir: cache.path)
        XCTAssertEqual(again.search(query: "offline regional", limit: 1).first?.endpoints.map(\.status),
                       [.discoveryFailed])
        let stored = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        XCTAssertGreaterThanOrEqual(stored.count, 2, "the bundle and the marks are stored: \(stored)")
        await assertThrowsChartLink("not a bundle", { $0.isInvalidInput }) {
            _ = try ProviderDirectory.fromBundle(bundle: Data("{}".utf8))
        }
        await assertThrowsChartLink("nothing listens on port 9", { $0.isNetwork }) {
            _ = try await loadProviderDirectory(urls: ["http://127.0.0.1:9/brands.json"])
        }

        // Linking the working endpoint the directory found.
        let c = try client(browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: working.fhirBase)
        XCTAssertEqual(account.patientId, "daniel-chen")
    }
}
