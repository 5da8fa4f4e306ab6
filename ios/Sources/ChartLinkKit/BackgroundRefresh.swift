#if canImport(BackgroundTasks)
import BackgroundTasks
import Foundation

/// Scheduling, on Apple platforms with BackgroundTasks (the identifier and the budget are in BackgroundBudget.swift).
///
/// While the phone is locked the client is locked too: it syncs with the tokens (Keychain items readable after the
/// first unlock since boot, `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`) and the accounts' public keys, and
/// writes what arrives sealed so that only `unlock()` (Face ID, the store key's access control) makes it readable.
/// The `BackgroundReport` holds counts per account and kind only, safe for a notification.
///
/// Set up:
/// 1. Info.plist: `BGTaskSchedulerPermittedIdentifiers` = [`ChartLinkBackgroundRefresh.defaultIdentifier`] (or
///    yours), and `UIBackgroundModes` = [`fetch`].
/// 2. In `application(_:didFinishLaunchingWithOptions:)` (before it returns):
///    ```swift
///    ChartLinkBackgroundRefresh.register(client: { try appModel.clientForBackground() },  // startLocked: true
///                                        onReport: { report in if report.total > 0 { notify(report) } })
///    ```
/// 3. When the app goes to the background: `try? ChartLinkBackgroundRefresh.schedule()`.
///
/// The database directory must stay writable while the phone is locked: `ChartLinkClient.forDevice` gives it
/// `FileProtectionType.completeUntilFirstUserAuthentication`; an app with its own `dataDir` calls
/// `allowWritesWhileLocked(dataDir:)`. The records stay encrypted by ChartLink either way.
extension ChartLinkBackgroundRefresh {
    /// Registers the refresh task's handler. Each run schedules the next one, syncs within the budget, and ends
    /// when the system's time is up (the sync is cancelled; what it wrote so far is kept).
    public static func register(
        identifier: String = defaultIdentifier,
        interval: TimeInterval = 3600,
        client: @escaping @Sendable () throws -> ChartLinkClient,
        onReport: @escaping @Sendable (BackgroundReport) -> Void
    ) {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            guard let refresh = task as? BGAppRefreshTask else {
                task.setTaskCompleted(success: false)
                return
            }
            try? schedule(identifier: identifier, after: interval)
            let work = Task {
                do {
                    let report = try await client().backgroundSync(budget: budget())
                    onReport(report)
                    refresh.setTaskCompleted(success: true)
                } catch {
                    refresh.setTaskCompleted(success: false)
                }
            }
            refresh.expirationHandler = { work.cancel() }
        }
    }

    /// Asks for the next refresh no earlier than `after` seconds from now (iOS decides when it really runs).
    public static func schedule(identifier: String = defaultIdentifier, after: TimeInterval = 3600) throws {
        let request = BGAppRefreshTaskRequest(identifier: identifier)
        request.earliestBeginDate = Date(timeIntervalSinceNow: after)
        try BGTaskScheduler.shared.submit(request)
    }

    /// The budget of one refresh with the device's Low Power Mode now (see `budget(maxDuration:metered:lowPowerMode:)`).
    public static func budget(maxDuration: TimeInterval = defaultMaxDuration, metered: Bool = false) -> SyncBudget {
        budget(maxDuration: maxDuration, metered: metered, lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled)
    }

    /// Lets the database in `dataDir` be written while the phone is locked (after its first unlock since boot).
    public static func allowWritesWhileLocked(dataDir: URL) throws {
        try FileManager.default.setAttributes(
            [.protectionKey: FileProtectionType.completeUntilFirstUserAuthentication], ofItemAtPath: dataDir.path)
    }
}
#endif
