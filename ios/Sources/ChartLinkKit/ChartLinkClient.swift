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
/// let labs = try await client.labResults()
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
    /// Tells `live` reads that an answer may have changed (fed by the events and by this client's own calls).
    private let changes = ChangeFeed()

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
        let changes = self.changes
        hub.observe { event in
            switch event {
            // A sync, an unlock, what locked syncs brought applied (after `unlock`/`init` returned), or an unlocked
            // background run.
            case .syncFinished, .unlocked, .lockedInboxApplied: changes.changed()
            case .backgroundSyncFinished(let report) where !report.locked: changes.changed()
            default: break
            }
        }
    }

    /// A read as live state, as Room's queries are on Android (Kotlin: `client.live { ... }`): the stream yields
    /// `read`'s answer now, and again whenever a sync, an unlock, a patient switch, a merge, a link or an unlink
    /// may have changed it (an answer equal to the last is not repeated). While locked it yields nothing — the
    /// records are not readable — and after unlock it yields again. Any other error of `read` ends the stream with
    /// that error.
    ///
    /// ```swift
    /// for try await labs in client.live({ try await $0.labResults() }) { show(labs) }
    /// ```
    public func live<T: Equatable & Sendable>(
        _ read: @escaping @Sendable (ChartLinkClient) async throws -> T
    ) -> AsyncThrowingStream<T, Error> {
        let changed = changes.stream()
        return AsyncThrowingStream { continuation in
            let task = Task {
                var last: T?
                // The first pass reads at once; each later one follows a change (bursts are read once).
                var pending = true
                var iterator = changed.makeAsyncIterator()
                repeat {
                    if pending {
                        do {
                            let answer = try await read(self)
                            if answer != last {
                                last = answer
                                continuation.yield(answer)
                            }
                        } catch ChartLinkError.Locked {
                            // Nothing to show until unlock, which yields again.
                        } catch is CancellationError {
                            break
                        } catch {
                            continuation.finish(throwing: error)
                            return
                        }
                    }
                    pending = await iterator.next() != nil
                } while pending && !Task.isCancelled
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
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
            let task = Task {
                // Reads run on the SDK's blocking pool (decrypting the patient), never on this Task's thread.
                continuation.yield(try? await sdk.activePatient())
                for await event in changes {
                    switch event {
                    case .locked: continuation.yield(nil)
                    case .unlocked, .syncFinished: continuation.yield(try? await sdk.activePatient())
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

    // MARK: - Cancellation

    /// Runs a long SDK call so that cancelling the calling `Task` cancels the Rust work: UniFFI's Swift async has no
    /// cancel path of its own (a cancelled Task would keep awaiting the Rust future), so the call gets a
    /// `CancelToken` that the Task's cancellation handler triggers. The call then throws `ChartLinkError.Cancelled`.
    /// A Task cancelled before the call starts cancels it before any work. Pass your own `token` to cancel from
    /// elsewhere too (a Cancel button).
    public func cancellable<T>(
        _ token: CancelToken? = nil,
        _ call: (CancelToken) async throws -> T
    ) async throws -> T {
        let token = token ?? CancelToken()
        return try await withTaskCancellationHandler {
            try await call(token)
        } onCancel: {
            token.cancel()
        }
    }

    // MARK: - ChartLinkProtocol, forwarded to the generated object (Kotlin: `ChartLinkInterface by sdk`)
    //
    // The long calls (link, sync, unlink, ...) are cancelled with the calling Task; the reads run SQLite and
    // decryption on the SDK's blocking pool, never on the caller's thread (the main actor included). The list reads
    // (`allergies(query:)`, `labResults(query:)`, ...) are forwarded by the generated extension in
    // Generated/ChartLinkKit+Extensions.swift (`cargo xtask swift`, build-xcframework.sh): a new list needs no line here.

    public func link(fhirBase: String, cancel: CancelToken? = nil) async throws -> LinkedAccount {
        let account = try await cancellable(cancel) { try await sdk.link(fhirBase: fhirBase, cancel: $0) }
        changes.changed()
        return account
    }

    public func beginLink(fhirBase: String, cancel: CancelToken? = nil) async throws -> AuthorizationRequest {
        try await cancellable(cancel) { try await sdk.beginLink(fhirBase: fhirBase, cancel: $0) }
    }

    public func completeLink(redirectUrl: String, cancel: CancelToken? = nil) async throws -> LinkedAccount {
        let account = try await cancellable(cancel) {
            try await sdk.completeLink(redirectUrl: redirectUrl, cancel: $0)
        }
        changes.changed()
        return account
    }

    public func cancelLink() throws { try sdk.cancelLink() }

    public func accounts() throws -> [LinkedAccount] { try sdk.accounts() }

    public func registerDevice(accountId: String, cancel: CancelToken? = nil) async throws -> String {
        try await cancellable(cancel) { try await sdk.registerDevice(accountId: accountId, cancel: $0) }
    }

    public func unlink(accountId: String, cancel: CancelToken? = nil) async throws -> UnlinkOutcome {
        let outcome = try await cancellable(cancel) { try await sdk.unlink(accountId: accountId, cancel: $0) }
        changes.changed()
        return outcome
    }

    public func confirmRevoked(accountId: String, cancel: CancelToken? = nil) async throws {
        try await cancellable(cancel) { try await sdk.confirmRevoked(accountId: accountId, cancel: $0) }
    }

    public func sync(accountId: String, cancel: CancelToken? = nil) async throws -> SyncReport {
        try await cancellable(cancel) { try await sdk.sync(accountId: accountId, cancel: $0) }
    }

    public func backgroundSync(budget: SyncBudget, cancel: CancelToken? = nil) async throws -> BackgroundReport {
        try await cancellable(cancel) { try await sdk.backgroundSync(budget: budget, cancel: $0) }
    }

    public func syncDue(budget: SyncBudget) throws -> [String] { try sdk.syncDue(budget: budget) }

    public func whatsNew() async throws -> [NewRecord] { try await sdk.whatsNew() }

    public func markWhatsNewSeen() async throws { try await sdk.markWhatsNewSeen() }

    public func switchPatient(contextId: String) async throws -> PatientContext {
        let patient = try await sdk.switchPatient(contextId: contextId)
        changes.changed()
        return patient
    }

    public func patients() async throws -> [PatientContext] { try await sdk.patients() }

    public func mergeSuggestions() async throws -> [MergeSuggestion] { try await sdk.mergeSuggestions() }

    public func confirmMerge(contextIds: [String]) async throws -> PatientContext {
        let patient = try await sdk.confirmMerge(contextIds: contextIds)
        changes.changed()
        return patient
    }

    public func splitPatient(contextId: String) async throws {
        try await sdk.splitPatient(contextId: contextId)
        changes.changed()
    }

    public func activePatient() async throws -> PatientContext? { try await sdk.activePatient() }

    public func labTrend(code: String) async throws -> LabTrend? { try await sdk.labTrend(code: code) }

    public func socialHistory() async throws -> [ClinicalObservation] { try await sdk.socialHistory() }


    public func documentContent(documentId: String) async throws -> DocumentContent? { try await sdk.documentContent(documentId: documentId) }

    public func documentText(documentId: String) async throws -> String? { try await sdk.documentText(documentId: documentId) }

    /// The active patient's whole record as a FHIR Bundle or NDJSON: health information, for where the user sends it.
    public func export(format: ExportFormat) async throws -> String { try await sdk.export(format: format) }

    public func record(resourceType: String, id: String) async throws -> ChartRecord? {
        try await sdk.record(resourceType: resourceType, id: id)
    }

    public func recordJson(resourceType: String, id: String) async throws -> String? {
        try await sdk.recordJson(resourceType: resourceType, id: id)
    }

    public func demographics() async throws -> Demographics? { try await sdk.demographics() }

    public func summary() async throws -> HealthSummary { try await sdk.summary() }

    public func startIdleTimer() throws -> SubscriptionHandle { try sdk.startIdleTimer() }

    public func recordActivity() { sdk.recordActivity() }

    public func appBackgrounded() { sdk.appBackgrounded() }

    public func appForegrounded() { sdk.appForegrounded() }

    public func lock() throws { try sdk.lock() }

    /// Reads the store key on the calling thread (the Keychain may show Face ID): prefer `unlockAsync()`.
    public func unlock() throws { try sdk.unlock() }

    /// Reads the store key (the Keychain shows Face ID / Touch ID) off the main thread, then the accounts.
    public func unlockAsync() async throws { try await sdk.unlockAsync() }

    public func locked() -> LockReason? { sdk.locked() }

    public func discardUnreadableAccountEntries() async throws -> UInt64 {
        try await sdk.discardUnreadableAccountEntries()
    }

    /// What the store had to do at start-up (a damaged database moved aside, damaged rows, unreadable entries).
    public func takeStoreNotices() -> [StoreNotice] { sdk.takeStoreNotices() }
}

extension ChartLinkError {
    /// What went wrong, as a sentence a person can read: the SDK's own message (it never holds a token or health
    /// data), without the case name that `errorDescription` (generated: `String(reflecting:)`) shows.
    public var userMessage: String {
        switch self {
        case .Network(let kind, let retryAfterSeconds, let detail):
            switch kind {
            case .unreachable: return "The provider could not be reached. Check the connection and try again."
            case .certificate:
                return "The provider's connection could not be verified (a Wi-Fi login page or a network filter may be in the way)."
            case .throttled:
                if let seconds = retryAfterSeconds { return "The provider is busy. Try again in \(seconds) seconds." }
                return "The provider is busy. Try again in a moment."
            case .timedOut, .interrupted, .serverError: return "Network problem: \(detail)"
            }
        case .Server(_, let detail): return "The provider's server could not answer this: \(detail)"
        case .Authorization(let reason, let detail):
            switch reason {
            case .denied: return "You chose not to share your records with this app."
            case .expired: return "The login took too long. Please start again."
            case .noLinkInProgress: return "This login was already used or cancelled. Please start again."
            case .mismatch: return "This login does not belong to this app. Please start again."
            case .browserFailed: return "The login page could not be shown: \(detail)"
            case .refused: return "The provider did not grant access: \(detail)"
            case .invalidAnswer: return "The provider's answer could not be used: \(detail)"
            }
        case .Discovery(let message): return "This address is not a health record server ChartLink can use: \(message)"
        case .AccessRevoked:
            return "The provider ended this app's access (it may have expired). Your records stay on this device; link again to update them."
        case .RelinkNeeded: return "Access has to be renewed. Link the account again."
        case .Locked: return "Your health records are locked. Unlock to continue."
        case .InvalidInput(let message): return message
        case .Storage(let kind, let detail):
            switch kind {
            case .busy: return "The health records are busy. Try again in a moment."
            case .wrongKey: return "The health records on this device can no longer be opened. Start over to link again."
            case .newerVersion: return "These health records were saved by a newer version of the app. Please update it."
            case .full: return "This device is out of space. Free some space and try again."
            case .damaged: return "The health records on this device are damaged: \(detail)"
            case .secureStore: return "Secure storage problem: \(detail)"
            case .other: return "Storage problem: \(detail)"
            }
        case .Cancelled: return "Cancelled."
        case .Internal: return "Something went wrong inside ChartLink. Please try again."
        }
    }
}
