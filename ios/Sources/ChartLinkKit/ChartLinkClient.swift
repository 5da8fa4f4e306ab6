import Foundation

/// ChartLink for a Swift app: the generated `ChartLink` (every method of `ChartLinkProtocol` is available here:
/// `link`, `sync`, `labResults`, `lock`, ...) plus what Swift adds — the events as an `AsyncStream`, and the idle
/// timer tied to the app being in the foreground. The Kotlin `ChartLinkClient` is the same, one to one.
///
/// Platform-independent: on iOS, `ChartLinkClient.forDevice(config:anchor:)` builds one with the Keychain,
/// `ASWebAuthenticationSession` and the device clock, and `.chartLinkLifecycle(client)` on the root view calls
/// `onForeground()`/`onBackground()`.
///
/// ```swift
/// let client = try ChartLinkClient(config: config, secureStore: store, browser: browser)
/// Task { for await event in client.events { render(event) } }
/// let account = try await client.link(fhirBase: "https://fhir.example.org/api/FHIR/R4")
/// _ = try await client.sync(accountId: account.id)
/// let labs = try client.labResults()
/// ```
///
/// Errors are `ChartLinkError` cases (`.Locked`, `.Network`, `.Cancelled`, ...); `error.userMessage` is a sentence
/// to show (the generated `errorDescription` is a debug rendering).
public final class ChartLinkClient: ChartLinkProtocol, @unchecked Sendable {
    /// The generated object, for anything this class does not wrap.
    public let sdk: ChartLink
    private let hub: EventHub
    private let stateLock = NSLock()
    private var idleTimer: SubscriptionHandle?

    /// Builds the SDK (see `ChartLink.init`): throws `ChartLinkError.InvalidInput` for a bad configuration and
    /// `ChartLinkError.Storage` when the secure store cannot be used. With `startLocked` (the default) the store
    /// key is not read: nothing prompts for Face ID while the app starts, and reads throw `.Locked` until
    /// `unlock()`.
    public init(
        config: ChartLinkConfig,
        secureStore: SecureStore,
        browser: AuthBrowser? = nil,
        clock: HostClock? = nil,
        startLocked: Bool = true
    ) throws {
        let hub = EventHub()
        self.hub = hub
        if startLocked {
            self.sdk = try ChartLink.newLocked(
                config: config, secureStore: secureStore, browser: browser, listener: hub, clock: clock)
        } else {
            self.sdk = try ChartLink(
                config: config, secureStore: secureStore, browser: browser, listener: hub, clock: clock)
        }
    }

    deinit {
        idleTimer?.cancel()
    }

    /// Everything the SDK reports: sync progress and results, lock warnings, locked/unlocked, revoked access.
    public var events: AsyncStream<Event> { hub.events() }

    /// How many streams of `events` are active.
    public var eventCollectors: Int { hub.collectors }

    /// Why the SDK is locked (nil while unlocked), as state: the stream starts with the current value, then each
    /// change. Drive the lock screen from it.
    public var lockStates: AsyncStream<LockReason?> {
        let changes = events
        let current = sdk.locked()
        return AsyncStream { continuation in
            continuation.yield(current)
            let task = Task {
                for await event in changes {
                    switch event {
                    case .locked(let reason): continuation.yield(reason)
                    case .unlocked: continuation.yield(nil)
                    default: continue
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The patient whose record the reads show (nil when none is linked or while locked), as state: the current
    /// value first, then the value after each lock, unlock and sync (`switchPatient` returns the new one).
    public var activePatientStates: AsyncStream<PatientContext?> {
        let changes = events
        let sdk = self.sdk
        return AsyncStream { continuation in
            continuation.yield(try? sdk.activePatient())
            let task = Task {
                for await event in changes {
                    switch event {
                    case .locked: continuation.yield(nil)
                    case .unlocked, .syncFinished: continuation.yield(try? sdk.activePatient())
                    default: continue
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The app is visible: report it (this may lock after a long absence) and start the idle timer. The timer is
    /// best effort: if it cannot start, the lock is still evaluated on every call.
    public func onForeground() {
        stateLock.lock()
        defer { stateLock.unlock() }
        sdk.appForegrounded()
        if idleTimer == nil {
            idleTimer = try? sdk.startIdleTimer()
        }
    }

    /// The app left the screen: stop the idle timer and start the background grace period.
    public func onBackground() {
        stateLock.lock()
        defer { stateLock.unlock() }
        stopIdleTimer()
        sdk.appBackgrounded()
    }

    /// Whether the idle timer runs.
    public var idleTimerRunning: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return idleTimer?.isActive() ?? false
    }

    /// Stops the idle timer (the Rust object is freed with the last reference; Kotlin: `close()`).
    public func close() {
        stateLock.lock()
        defer { stateLock.unlock() }
        stopIdleTimer()
    }

    private func stopIdleTimer() {
        idleTimer?.cancel()
        idleTimer = nil
    }

    // MARK: - ChartLinkProtocol, forwarded to the generated object (Kotlin: `ChartLinkInterface by sdk`)

    public func link(fhirBase: String) async throws -> LinkedAccount {
        try await sdk.link(fhirBase: fhirBase)
    }

    public func beginLink(fhirBase: String) async throws -> AuthorizationRequest {
        try await sdk.beginLink(fhirBase: fhirBase)
    }

    public func completeLink(redirectUrl: String) async throws -> LinkedAccount {
        try await sdk.completeLink(redirectUrl: redirectUrl)
    }

    public func cancelLink() throws { try sdk.cancelLink() }

    public func accounts() throws -> [LinkedAccount] { try sdk.accounts() }

    public func registerDevice(accountId: String) async throws -> String {
        try await sdk.registerDevice(accountId: accountId)
    }

    public func unlink(accountId: String) async throws -> UnlinkOutcome {
        try await sdk.unlink(accountId: accountId)
    }

    public func confirmRevoked(accountId: String) async throws {
        try await sdk.confirmRevoked(accountId: accountId)
    }

    public func sync(accountId: String) async throws -> SyncReport {
        try await sdk.sync(accountId: accountId)
    }

    public func patients() throws -> [PatientContext] { try sdk.patients() }

    public func activePatient() throws -> PatientContext? { try sdk.activePatient() }

    public func switchPatient(contextId: String) throws -> PatientContext {
        try sdk.switchPatient(contextId: contextId)
    }

    public func labResults() throws -> [LabResult] { try sdk.labResults() }

    public func labTrend(code: String) throws -> LabTrend? { try sdk.labTrend(code: code) }

    public func vitalSigns() throws -> [VitalSign] { try sdk.vitalSigns() }

    public func allergies() throws -> [Allergy] { try sdk.allergies() }

    public func medications() throws -> [Medication] { try sdk.medications() }

    public func immunizations() throws -> [Immunization] { try sdk.immunizations() }

    public func problems() throws -> [Problem] { try sdk.problems() }

    public func visits() throws -> [Visit] { try sdk.visits() }

    public func documents() throws -> [Document] { try sdk.documents() }

    public func observations() throws -> [Observation] { try sdk.observations() }

    public func socialHistory() throws -> [Observation] { try sdk.socialHistory() }

    public func procedures() throws -> [Procedure] { try sdk.procedures() }

    public func diagnosticReports() throws -> [DiagnosticReport] { try sdk.diagnosticReports() }

    public func carePlans() throws -> [CarePlan] { try sdk.carePlans() }

    public func goals() throws -> [Goal] { try sdk.goals() }

    public func careTeams() throws -> [CareTeam] { try sdk.careTeams() }

    public func devices() throws -> [Device] { try sdk.devices() }

    public func serviceRequests() throws -> [ServiceRequest] { try sdk.serviceRequests() }

    public func coverages() throws -> [Coverage] { try sdk.coverages() }

    public func medicationDispenses() throws -> [MedicationDispense] { try sdk.medicationDispenses() }

    public func medicationStatements() throws -> [MedicationStatement] { try sdk.medicationStatements() }

    public func questionnaireResponses() throws -> [QuestionnaireResponse] { try sdk.questionnaireResponses() }

    public func documentContent(documentId: String) throws -> DocumentContent? {
        try sdk.documentContent(documentId: documentId)
    }

    public func documentText(documentId: String) throws -> String? {
        try sdk.documentText(documentId: documentId)
    }

    public func appointments() throws -> [Appointment] { try sdk.appointments() }

    public func demographics() throws -> Demographics? { try sdk.demographics() }

    public func summary() throws -> HealthSummary { try sdk.summary() }

    public func startIdleTimer() throws -> SubscriptionHandle { try sdk.startIdleTimer() }

    public func recordActivity() { sdk.recordActivity() }

    public func appBackgrounded() { sdk.appBackgrounded() }

    public func appForegrounded() { sdk.appForegrounded() }

    public func lock() throws { try sdk.lock() }

    public func unlock() throws { try sdk.unlock() }

    /// Reads the store key (the Keychain shows Face ID / Touch ID) off the main thread, then the accounts.
    public func unlockAsync() async throws { try await sdk.unlockAsync() }

    public func locked() -> LockReason? { sdk.locked() }

    public func discardUnreadableAccountEntries() throws -> UInt64 { try sdk.discardUnreadableAccountEntries() }

    /// What the store had to do at start-up (a damaged database moved aside, damaged rows, unreadable entries).
    public func takeStoreNotices() -> [StoreNotice] { sdk.takeStoreNotices() }
}

extension ChartLinkError {
    /// What went wrong, as a sentence a person can read: the SDK's own message (it never holds a token or health
    /// data), without the case name that `errorDescription` (generated: `String(reflecting:)`) shows.
    public var userMessage: String {
        switch self {
        case .Network(let message): return "Network problem: \(message)"
        case .Authorization(let message): return "The provider did not grant access: \(message)"
        case .AccessRevoked: return "The provider ended this app's access. Link the account again."
        case .RelinkNeeded: return "Access has to be renewed. Link the account again."
        case .Locked: return "Your health records are locked. Unlock to continue."
        case .InvalidInput(let message): return message
        case .Storage(let message): return "Secure storage problem: \(message)"
        case .Cancelled: return "Cancelled."
        case .WrongStoreKey: return "The health records on this device can no longer be opened. Start over to link again."
        case .StoreFromNewerVersion(let message): return message
        case .StoreBusy: return "The health records are busy. Try again in a moment."
        case .Internal: return "Something went wrong inside ChartLink. Please try again."
        }
    }
}
