#if canImport(AuthenticationServices) && canImport(Security) && canImport(LocalAuthentication)
import AuthenticationServices
import Foundation

extension ChartLinkClient {
    /// A client wired to the device (Kotlin: `ChartLinkAndroid.create`): the Keychain (`KeychainSecureStore`),
    /// `ASWebAuthenticationSession` for the login, the clock that counts through sleep (`DeviceClock`), and the
    /// database in Application Support (excluded from backups, writable while the phone is locked). The
    /// configuration is `deviceConfig(_:applicationSupport:prepare:)`'s, which is portable and tested on Linux.
    public static func forDevice(
        config: ChartLinkConfig,
        secureStore: SecureStore = KeychainSecureStore(),
        anchor: @escaping @MainActor () -> ASPresentationAnchor
    ) throws -> ChartLinkClient {
        let support = try FileManager.default.url(
            for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
        let configured = try deviceConfig(config, applicationSupport: support) { dir in
            var dir = dir
            var values = URLResourceValues()
            values.isExcludedFromBackup = true
            try dir.setResourceValues(values)
            #if canImport(BackgroundTasks)
            // Background sync writes while the phone is locked (sealed: only unlock makes it readable).
            try ChartLinkBackgroundRefresh.allowWritesWhileLocked(dataDir: dir)
            #endif
        }
        return try ChartLinkClient(
            config: configured,
            secureStore: secureStore,
            browser: WebAuthenticationBrowser(anchor: anchor),
            clock: DeviceClock()
        )
    }
}
#endif
