import AuthenticationServices
import Foundation

extension ChartLinkClient {
    /// A client wired to the device (Kotlin: `ChartLinkAndroid.create`): the Keychain (`KeychainSecureStore`),
    /// `ASWebAuthenticationSession` for the login, the clock that counts through sleep, and the database in
    /// Application Support (excluded from backups).
    public static func forDevice(
        config: ChartLinkConfig,
        secureStore: SecureStore = KeychainSecureStore(),
        anchor: @escaping @MainActor () -> ASPresentationAnchor
    ) throws -> ChartLinkClient {
        var dataDir = config.dataDir
        if dataDir == nil {
            var dir = try FileManager.default.url(
                for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true
            ).appendingPathComponent("ChartLink", isDirectory: true)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            var values = URLResourceValues()
            values.isExcludedFromBackup = true
            try dir.setResourceValues(values)
            // Background sync writes while the phone is locked (sealed: only unlock makes it readable).
            try ChartLinkBackgroundRefresh.allowWritesWhileLocked(dataDir: dir)
            dataDir = dir.path
        }
        let configured = ChartLinkConfig(
            clientId: config.clientId,
            redirectUri: config.redirectUri,
            appName: config.appName,
            dataDir: dataDir,
            lockTimeoutSeconds: config.lockTimeoutSeconds,
            lockWarningSeconds: config.lockWarningSeconds,
            backgroundGraceSeconds: config.backgroundGraceSeconds,
            revocation: config.revocation,
            wanted: config.wanted
        )
        return try ChartLinkClient(
            config: configured,
            secureStore: secureStore,
            browser: WebAuthenticationBrowser(anchor: anchor),
            clock: DeviceClock()
        )
    }
}

/// Wall time, and `CLOCK_MONOTONIC_RAW`, which keeps counting while the device sleeps (the idle lock needs that;
/// Kotlin: `DeviceClock` on `elapsedRealtime`).
public final class DeviceClock: HostClock, @unchecked Sendable {
    public init() {}

    public func nowUnixMs() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }

    public func monotonicMs() -> Int64 {
        Int64(clock_gettime_nsec_np(CLOCK_MONOTONIC_RAW) / 1_000_000)
    }
}
