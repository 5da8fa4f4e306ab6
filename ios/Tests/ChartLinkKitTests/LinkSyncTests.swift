// Linking, syncing and reading through the real library and `ChartLinkClient`, against the sandbox.
import ChartLinkKit
import Foundation
import XCTest

final class LinkSyncTests: XCTestCase {
    override class func setUp() { lineBufferedOutput() }

    func testLinkSyncWithEventsReadLabsAndTheHbA1cTrendThenUnlink() async throws {
        let fhirBase = try Sandbox.fhirBase()
        let store = MemorySecureStore()
        let browser = PortalBrowser.daniel()
        let c = try client(store: store, browser: browser)
        let recorder = Recorder(c)
        defer { recorder.stop() }

        let account = try await c.link(fhirBase: fhirBase)
        XCTAssertEqual(account.patientId, "daniel-chen")
        XCTAssertEqual(account.status, .active)
        XCTAssertEqual(account.fhirBase.trimmingCharacters(in: CharacterSet(charactersIn: "/")), fhirBase)
        XCTAssertEqual(browser.calls, 1)
        XCTAssertFalse(try store.keys(prefix: "chartlink/account/").isEmpty, "the tokens live in the Swift SecureStore")
        XCTAssertNotNil(try store.get(key: "chartlink/store-key"), "so does the store key")

        let report = try await c.sync(accountId: account.id)
        XCTAssertEqual(report.accountId, account.id)
        XCTAssertGreaterThan(report.updated, 0)
        XCTAssertTrue(report.perType.contains { $0.resourceType == "Observation" && $0.new > 0 }, "\(report.perType)")
        XCTAssertTrue(report.failures.allSatisfy(\.notGranted), "\(report.failures)")

        // The events stream: progress of this account's sync, then the finished event with the same report.
        let progress = try await recorder.await("sync progress") {
            if case .syncProgress(let p) = $0 { return p.accountId == account.id } else { return false }
        }
        guard case .syncProgress(let p) = progress else { return XCTFail("not progress") }
        XCTAssertGreaterThanOrEqual(p.queriesTotal, p.queriesDone)
        let finished = try await recorder.await("sync finished") { $0.isSyncFinished }
        XCTAssertEqual(finished, .syncFinished(report: report))
        let events = recorder.events
        let lastProgress = events.lastIndex { $0.isSyncProgress }
        let finishedAt = events.firstIndex { $0.isSyncFinished }
        XCTAssertNotNil(lastProgress)
        XCTAssertLessThan(lastProgress ?? .max, finishedAt ?? .min, "progress comes before the finished event")

        let active = try await c.activePatient()
        XCTAssertEqual(active?.name, "Daniel Chen")
        XCTAssertEqual(active?.relation, .myself)
        let labs = try await c.labResults()
        XCTAssertFalse(labs.isEmpty)
        XCTAssertTrue(labs.allSatisfy { $0.source != nil && !$0.name.isEmpty })
        let dated = labs.compactMap(\.date)
        XCTAssertTrue(zip(dated, dated.dropFirst()).allSatisfy { !($0 < $1) }, "newest first")
        let a1c = labs.filter { $0.code == hba1c }
        XCTAssertGreaterThanOrEqual(a1c.filter { $0.numericValue != nil && $0.unit != nil }.count, 2, "\(a1c.count) HbA1c")

        let trend = try await c.labTrend(code: hba1c)
        let points = try XCTUnwrap(trend).points
        XCTAssertEqual(trend?.code, hba1c)
        XCTAssertGreaterThanOrEqual(points.count, 2, "a trend has points")
        XCTAssertTrue(zip(points, points.dropFirst()).allSatisfy { !($1.date < $0.date) }, "oldest first (FhirDate is Comparable)")
        XCTAssertLessThan(try XCTUnwrap(points.first).date, try XCTUnwrap(points.last).date)
        XCTAssertEqual(Set(points.map(\.value)), Set(a1c.compactMap(\.numericValue)), "the trend holds the results")
        let none = try await c.labTrend(code: "0000-0")
        XCTAssertNil(none)

        let summary = try await c.summary()
        XCTAssertEqual(summary.patient?.name, "Daniel Chen")
        XCTAssertFalse(summary.latestResults.isEmpty)
        XCTAssertFalse(summary.problems.isEmpty)
        _ = try await (c.medications(), c.allergies(), c.immunizations(), c.vitalSigns(), c.visits(), c.appointments())
        let documents = try await c.documents()
        if let withContent = documents.first(where: \.hasContent) {
            let content = try await c.documentContent(documentId: withContent.id)
            XCTAssertNotNil(content)
        }

        // Unlink: access revoked at the provider, the account and its tokens gone from the Swift store.
        let outcome = try await c.unlink(accountId: account.id)
        XCTAssertTrue(outcome.revokedAtProvider)
        XCTAssertEqual(outcome.revocation, .revoked)
        XCTAssertTrue(try c.accounts().isEmpty)
        XCTAssertTrue(try store.keys(prefix: "chartlink/account/").isEmpty, "unlink removed the tokens")
        let afterUnlink = try await c.activePatient()
        XCTAssertNil(afterUnlink)
    }

    func testAParentLinksHerselfAndHerChildUnderProxy() async throws {
        let fhirBase = try Sandbox.fhirBase()
        let browser = BrowserQueue(
            PortalBrowser("maria", "maria-demo", patient: "maria-garcia"),
            PortalBrowser("maria", "maria-demo", patient: "leo-garcia"))
        let c = try client(browser: browser)
        let maria = try await c.link(fhirBase: fhirBase)
        let leo = try await c.link(fhirBase: fhirBase)
        XCTAssertEqual(maria.patientId, "maria-garcia")
        XCTAssertEqual(leo.patientId, "leo-garcia")
        _ = try await c.sync(accountId: maria.id)
        _ = try await c.sync(accountId: leo.id)

        let patients = Dictionary(uniqueKeysWithValues: try await c.patients().map { ($0.name ?? "", $0) })
        XCTAssertEqual(Set(patients.keys), ["Maria Garcia", "Leo Garcia"])
        XCTAssertEqual(patients["Maria Garcia"]?.relation, .myself)
        XCTAssertEqual(patients["Leo Garcia"]?.relation, .child)

        let first = try await c.activePatient()
        XCTAssertEqual(first?.name, "Maria Garcia", "the first link is active")
        let mariaLabs = Set(try await c.labResults().map(\.id))
        let leoContext = try XCTUnwrap(patients["Leo Garcia"])
        let switched = try await c.switchPatient(contextId: leoContext.id)
        XCTAssertEqual(switched.name, "Leo Garcia")
        let demographics = try await c.demographics()
        XCTAssertEqual(demographics?.name, "Leo Garcia")
        let leoLabs = Set(try await c.labResults().map(\.id))
        XCTAssertTrue(mariaLabs.isDisjoint(with: leoLabs), "switching never mixes records")
        _ = try await c.switchPatient(contextId: maria.id)  // an account id works too
        let summary = try await c.summary()
        XCTAssertEqual(summary.patient?.name, "Maria Garcia")
    }

    func testDatesAreTypedFhirDatesSortedAtTheirPrecision() async throws {
        // FHIR's partial dates cross as FhirDate: the precision is kept ("2019-05" stays a month), and the order is
        // Rust's (generated Comparable): by the earliest instant covered, a coarser date first when two start together.
        func d(_ text: String, _ precision: DatePrecision, _ month: Int32?, _ day: Int32?, _ epoch: Int64,
               _ time: Int32? = nil, _ offset: Int32? = nil) -> FhirDate {
            FhirDate(text: text, precision: precision, year: 2019, month: month, day: day, secondsOfDay: time,
                     offsetMinutes: offset, epochSeconds: epoch)
        }
        let year = d("2019", .year, nil, nil, 1_546_300_800)
        let jan1 = d("2019-01-01", .day, 1, 1, 1_546_300_800)
        let may = d("2019-05", .month, 5, nil, 1_556_668_800)
        let mayThird = d("2019-05-03T10:15:00+02:00", .dateTime, 5, 3, 1_556_871_300, 36_900, 120)
        XCTAssertEqual([mayThird, may, jan1, year].sorted(), [year, jan1, may, mayThird])
        XCTAssertTrue(year < jan1 && may > jan1 && mayThird > may)

        let c = try client(browser: PortalBrowser.daniel())
        _ = try await c.sync(accountId: try await c.link(fhirBase: try Sandbox.fhirBase()).id)
        let dates = try await c.labResults().compactMap(\.date) + c.problems().compactMap(\.onset)
            + c.immunizations().compactMap(\.date)
        XCTAssertFalse(dates.isEmpty)
        for date in dates {
            let expected: Int
            switch date.precision {
            case .year: expected = 4
            case .month: expected = 7
            case .day: expected = 10
            case .dateTime: expected = 19
            }
            XCTAssertTrue(date.text.count == expected || (date.precision == .dateTime && date.text.count > expected),
                          "\(date.text) at \(date.precision)")
            XCTAssertEqual(Int(date.text.prefix(4)), Int(date.year))
        }
    }

    func testRecordsAreIdentifiableForSwiftUILists() async throws {
        let c = try client(browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)
        func ids<T: Identifiable>(_ items: [T]) -> [T.ID] { items.map(\.id) }
        let labs = try await c.labResults()
        let labIds = ids(labs)
        XCTAssertEqual(labIds.count, Set(labIds).count, "lab ids are unique within one patient")
        XCTAssertEqual(ids(try c.accounts()), [account.id])
        let patients = try await c.patients()
        XCTAssertEqual(ids(patients).count, 1)
    }

    func testTheRecordExportsAsABundleOrNDJSONAndOneRecordAsItsFHIRJSON() async throws {
        let c = try client(browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)

        let bundle = try await c.export(format: .bundle)
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bundle.utf8)) as? [String: Any])
        XCTAssertEqual(parsed["resourceType"] as? String, "Bundle")
        XCTAssertEqual(parsed["type"] as? String, "collection")
        let entries = try XCTUnwrap(parsed["entry"] as? [[String: Any]])
        let lines = try await c.export(format: .ndjson).split(separator: "\n")
        XCTAssertEqual(lines.count, entries.count, "one line per resource")
        for line in lines.prefix(5) {
            let resource = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            XCTAssertNotNil(resource?["resourceType"] as? String)
        }

        let labs = try await c.labResults()
        let lab = try XCTUnwrap(labs.first)
        let raw = try await c.recordJson(resourceType: "Observation", id: lab.id)
        let resource = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(raw).utf8)) as? [String: Any])
        XCTAssertEqual(resource["resourceType"] as? String, "Observation")
        XCTAssertEqual(resource["id"] as? String, lab.id)
        let missing = try await c.recordJson(resourceType: "Observation", id: "no-such-lab")
        XCTAssertNil(missing)
        await assertThrowsChartLink("a malformed type", { $0.isInvalidInput }) {
            _ = try await c.recordJson(resourceType: "not a type!", id: lab.id)
        }
    }

    func testListsComeInPagesAndDateRanges() async throws {
        let c = try client(browser: PortalBrowser.daniel())
        let account = try await c.link(fhirBase: try Sandbox.fhirBase())
        _ = try await c.sync(accountId: account.id)
        let all = try await c.labResults()
        XCTAssertGreaterThan(all.count, 10)
        // One Observation record, tagged by its kind: each list holds its kinds.
        XCTAssertTrue(all.allSatisfy { $0.kind == .lab })
        let vitals = try await c.vitalSigns()
        XCTAssertTrue(!vitals.isEmpty && vitals.allSatisfy { $0.kind == .vitalSign })
        let others = try await c.observations()
        XCTAssertFalse(others.contains { $0.kind == .lab || $0.kind == .vitalSign })

        // Every page, each after the last record of the one before: the list, once, in its order.
        var paged: [ClinicalObservation] = []
        var query = RecordQuery(limit: 7)
        while true {
            let page = try await c.labResults(query: query)
            XCTAssertLessThanOrEqual(page.count, 7)
            paged += page
            guard page.count == 7, let last = page.last else { break }
            query = RecordQuery(limit: 7, after: last.id)
        }
        XCTAssertEqual(paged, all, "the pages are the list")

        // A year, at its precision.
        let year = try XCTUnwrap(all[all.count / 2].date).year
        let ranged = try await c.labResults(query: RecordQuery(from: "\(year)", to: "\(year)"))
        XCTAssertEqual(ranged, all.filter { $0.date?.year == year })

        await assertThrowsChartLink("limit 0", { $0.isInvalidInput }) {
            _ = try await c.labResults(query: RecordQuery(limit: 0))
        }
        await assertThrowsChartLink("not a date", { $0.isInvalidInput }) {
            _ = try await c.labResults(query: RecordQuery(from: "yesterday"))
        }
        let lab = try XCTUnwrap(all.first)
        await assertThrowsChartLink("a lab's id as the start of the vital signs", { $0.isInvalidInput }) {
            _ = try await c.vitalSigns(query: RecordQuery(after: lab.id))
        }
    }
}
