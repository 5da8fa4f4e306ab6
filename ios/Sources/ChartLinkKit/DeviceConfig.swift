import Foundation

extension ChartLinkClient {
    /// The configuration `forDevice` builds a client with: `config` as it is when it names its `dataDir`, else
    /// `config` with the database in `<applicationSupport>/ChartLink`, created (with its parents) and handed to
    /// `prepare` first (on iOS: excluded from backups, writable while the phone is locked). Every other field is
    /// kept. Portable, so it is tested on Linux; `forDevice` passes the app's Application Support directory.
    public static func deviceConfig(
        _ config: ChartLinkConfig,
        applicationSupport: URL,
        prepare: (URL) throws -> Void = { _ in }
    ) throws -> ChartLinkConfig {
        if config.dataDir != nil { return config }
        let dir = applicationSupport.appendingPathComponent("ChartLink", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try prepare(dir)
        return ChartLinkConfig(
            clientId: config.clientId,
            redirectUri: config.redirectUri,
            appName: config.appName,
            dataDir: dir.path,
            lockTimeoutSeconds: config.lockTimeoutSeconds,
            lockWarningSeconds: config.lockWarningSeconds,
            backgroundGraceSeconds: config.backgroundGraceSeconds,
            revocation: config.revocation,
            wanted: config.wanted
        )
    }
}
