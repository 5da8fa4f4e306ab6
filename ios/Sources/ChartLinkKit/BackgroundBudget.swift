import Foundation

/// Background sync on iOS with `BGAppRefreshTask` (Kotlin: `ChartLinkBackgroundSync` with JobScheduler). Thin: the
/// core decides what is due and stays within the budget; the shell only schedules the task and passes the budget.
///
/// This part is portable (and tested on Linux): the identifier and the budget of one run from the device's state.
/// Scheduling (`register`, `schedule`) and the device's Low Power Mode are in BackgroundRefresh.swift, on Apple
/// platforms with BackgroundTasks.
public enum ChartLinkBackgroundRefresh {
    public static let defaultIdentifier = "dev.chartlink.sdk.refresh"

    /// What iOS gives a refresh task is about 30 s; a run stops itself a few seconds before.
    public static let defaultMaxDuration: TimeInterval = 25

    /// An account synced within this long is not due again.
    public static let minIntervalSeconds: Int64 = 15 * 60

    /// The budget of one refresh: `maxDuration` seconds (at least 1 s), no byte cap, no document contents on a
    /// metered network, nothing at all in Low Power Mode.
    public static func budget(
        maxDuration: TimeInterval = defaultMaxDuration,
        metered: Bool = false,
        lowPowerMode: Bool
    ) -> SyncBudget {
        let seconds = maxDuration.isFinite ? min(max(maxDuration, 1), 24 * 3600) : defaultMaxDuration
        return SyncBudget(
            maxDurationMs: Int64((seconds * 1000).rounded()),
            maxBytes: 0,
            metered: metered,
            lowBattery: lowPowerMode,
            minIntervalSeconds: minIntervalSeconds
        )
    }
}
