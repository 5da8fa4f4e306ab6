import ChartLinkKit
import Foundation

/// What a link and sync bring, for the views. Health information: show it, never log it.
struct Overview {
    let labs: [ClinicalObservation] // newest first; Identifiable: List(labs) { ... }
    let hba1c: LabTrend? // for a chart: points oldest first
    let summary: HealthSummary
}

/// What the app does with ChartLink, apart from its views: link, sync and read, say what an event means, find a
/// provider. The views below keep the results in `@State`.
@MainActor
final class HealthRecords {
    let chartLink: ChartLinkClient
    private var directory: ProviderDirectory?

    init(chartLink: ChartLinkClient) {
        self.chartLink = chartLink
    }

    /// Links the provider at `fhirBase` (its login and consent pages open in ASWebAuthenticationSession), syncs,
    /// and reads. Cancelling the calling Task cancels the Rust work too (the client passes a CancelToken that the
    /// Task's cancellation triggers) and the call throws `.Cancelled`.
    func linkAndSync(fhirBase: String) async throws -> Overview {
        let account = try await chartLink.link(fhirBase: fhirBase)
        _ = try await chartLink.sync(accountId: account.id)

        // A parent with a linked child: switch whose record the reads show.
        if let child = try await chartLink.patients().first(where: { $0.relation == .child }) {
            _ = try await chartLink.switchPatient(contextId: child.id)
        }
        // Reads are async: SQLite and decryption run on the SDK's threads, never on the main actor.
        return Overview(
            labs: try await chartLink.labResults(),
            hba1c: try await chartLink.labTrend(code: "4548-4"),
            summary: try await chartLink.summary()
        )
    }

    /// One lab result as a row. Dates keep FHIR's precision ("2019-05" stays a month) and sort: FhirDate is
    /// Comparable.
    static func row(_ lab: ClinicalObservation) -> String {
        "\(lab.date?.text ?? "") \(lab.name): \(lab.valueText ?? "") (\(lab.rangeText ?? "no range"))"
    }

    /// What to tell the user about an error (nil: nothing, the user closed the sheet).
    static func problem(_ error: Error) -> String? {
        switch error {
        case ChartLinkError.Cancelled: return nil
        case ChartLinkError.Network(_, let retryAfterSeconds?, _): return "Try again in \(retryAfterSeconds) s"
        case ChartLinkError.Network(_, _, let detail): return "Try again later: \(detail)"
        case let error as ChartLinkError: return error.userMessage // .Locked: the lock screen shows anyway
        default: return error.localizedDescription
        }
    }

    /// What an event means for the user (nil: nothing to say).
    static func describe(_ event: Event) -> String? {
        switch event {
        case .syncProgress(let progress): return "Syncing \(progress.queriesDone) of \(progress.queriesTotal)"
        case .syncFinished(let report): return "\(report.updated) new or updated items"
        case .backgroundSyncFinished(let report): return "\(report.total) new records since you last looked"
        case .lockWarning(let remainingMs): return "Locking in \(remainingMs / 1000) s"
        case .locked, .unlocked: return nil // lockStates drives the lock screen
        case .lockedInboxApplied: return nil // what locked syncs brought is readable; the live reads refresh
        case .accessRevoked: return "The provider ended access. Link again to keep syncing."
        case .relinkNeeded: return "Access has to be renewed: link again."
        case .linkLimited(_, let notGranted, let canRenew):
            return "Linked; \(notGranted.count) kinds of data were not shared" + (canRenew ? "" : "; link again later")
        }
    }

    func lockNow() throws { try chartLink.lock() } // the store key and tokens leave memory; reads throw .Locked

    func unlock() async throws { try await chartLink.unlockAsync() } // Face ID / Touch ID, off the main thread

    /// The provider picker's directory (SMART brands bundles): loaded once, cached with its ETag (works offline);
    /// endpoints whose discovery failed are marked and not offered.
    func loadProviders(cacheDir: String) async throws {
        directory = try await loadProviderDirectory(urls: ["https://fhir.example.org/brands.json"], cacheDir: cacheDir)
        _ = try await directory?.checkEndpoints(cancel: nil) // optional: marks dead endpoints (stored for next time)
    }

    func search(_ query: String) -> [Provider] { directory?.search(query: query, limit: 20) ?? [] }

    static func fhirBase(of provider: Provider) -> String? {
        provider.endpoints.first { $0.status != .discoveryFailed }?.fhirBase
    }
}

// The app and its views (iOS; put `@main` on `MyHealthApp` in your app target).
#if canImport(SwiftUI) && canImport(UIKit)
import AuthenticationServices
import SwiftUI
import UIKit

struct MyHealthApp: App {
    @State private var records: HealthRecords?
    @State private var problem: String?

    private let config = ChartLinkConfig(
        clientId: "chartlink-demo",
        redirectUri: "chartlink-demo://callback",
        appName: "My Health",
        dataDir: nil,
        lockTimeoutSeconds: 600,
        lockWarningSeconds: 60,
        backgroundGraceSeconds: 30,
        revocation: nil,
        wanted: []
    )

    var body: some Scene {
        WindowGroup {
            if let records {
                RecordView(records: records)
                    .chartLinkLifecycle(records.chartLink) // scene phase, touches (sheets too), typing -> idle lock
            } else {
                VStack {
                    Button("Open my health records") { Task { await start() } }
                    if let problem { Text(problem) }
                }
                .task { await start() }
            }
        }
    }

    /// The client starts locked (it reads no store key, so no Face ID prompt here); opening the database is file
    /// work, so it runs off the main thread. Reads throw `.Locked` until `unlock()`.
    @MainActor
    private func start() async {
        guard records == nil else { return }
        let config = config
        do {
            let client = try await Task.detached {
                try ChartLinkClient.forDevice(config: config, anchor: {
                    UIApplication.shared.connectedScenes.compactMap { ($0 as? UIWindowScene)?.keyWindow }.first
                        ?? ASPresentationAnchor()
                })
            }.value
            records = HealthRecords(chartLink: client)
        } catch {
            // .Storage(kind: .wrongKey, ...): the records can never be opened again; after the user agreed, start over with
            // resetChartlink(config:secureStore:) and link again.
            problem = HealthRecords.problem(error)
        }
    }
}

struct RecordView: View {
    let records: HealthRecords
    @State private var locked = true
    @State private var overview: Overview?
    @State private var message: String?
    @State private var query = ""
    @State private var providers: [Provider] = []
    @State private var work: Task<Void, Never>?

    var body: some View {
        VStack {
            if let message { Text(message) }
            if locked {
                Button("Unlock") { Task { do { try await records.unlock() } catch { message = HealthRecords.problem(error) } } }
            } else if let overview {
                Text("\(overview.hba1c?.points.count ?? 0) HbA1c results, \(overview.summary.allergies.count) allergies")
                List(overview.labs) { lab in Text(HealthRecords.row(lab)) }
                Button("Lock") { try? records.lockNow() }
            } else {
                List(providers) { provider in // Provider is Identifiable
                    Button(provider.name) { link(provider) }
                        .disabled(HealthRecords.fhirBase(of: provider) == nil)
                }
                .searchable(text: $query)
                .onChange(of: query) { query in providers = records.search(query) }
                .task { try? await records.loadProviders(cacheDir: NSTemporaryDirectory()) }
            }
        }
        .task { for await reason in records.chartLink.lockStates { locked = reason != nil } }
        .task { for await event in records.chartLink.events { message = HealthRecords.describe(event) ?? message } }
        .onDisappear { work?.cancel() } // cancels a link or sync in progress (its sheet closes)
    }

    private func link(_ provider: Provider) {
        guard let fhirBase = HealthRecords.fhirBase(of: provider) else { return }
        work = Task {
            do {
                overview = try await records.linkAndSync(fhirBase: fhirBase)
            } catch {
                message = HealthRecords.problem(error)
            }
        }
    }
}
#endif
