// What the tests share: the sandbox's address, a portal browser on URLSession, a clock moved by hand, an event
// recorder, the sandbox's admin API. `cargo xtask swift` starts the sandbox (two, for the merge test) and passes
//   CHARTLINK_SANDBOX=http://127.0.0.1:<port>   CHARTLINK_SANDBOX_2=http://127.0.0.1:<port>
// and LD_LIBRARY_PATH with the directory of libchartlink_ffi.so.
import ChartLinkKit
import Foundation
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum Sandbox {
    /// The sandbox xtask started. A missing variable fails the test that needs it (never a skip).
    static func url(_ name: String = "CHARTLINK_SANDBOX") throws -> String {
        guard let url = ProcessInfo.processInfo.environment[name], url.hasPrefix("http://") else {
            throw TestSetupError("set \(name)=http://127.0.0.1:<port> (cargo xtask swift starts the sandbox and does)")
        }
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    static func fhirBase(_ name: String = "CHARTLINK_SANDBOX") throws -> String { try url(name) + "/fhir" }

    /// The sandbox's admin API: what the provider's EHR does on its side.
    static func admin(_ method: String, _ path: String, json: String? = nil) async throws {
        var request = URLRequest(url: URL(string: try url() + "/admin" + path)!)
        request.httpMethod = method
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.utf8)
        }
        let (response, body) = try await Http().send(request)
        guard (200..<300).contains(response.statusCode) else {
            throw TestSetupError("admin \(method) \(path) answered \(response.statusCode): \(body)")
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

let hba1c = "4548-4"

func config(
    dataDir: String? = nil,
    clientId: String = "chartlink-demo",
    lockTimeoutSeconds: Int64 = 600,
    lockWarningSeconds: Int64 = 60,
    backgroundGraceSeconds: Int64 = 30
) -> ChartLinkConfig {
    ChartLinkConfig(
        clientId: clientId,
        redirectUri: "chartlink-demo://callback",
        appName: "Swift host tests",
        dataDir: dataDir,
        lockTimeoutSeconds: lockTimeoutSeconds,
        lockWarningSeconds: lockWarningSeconds,
        backgroundGraceSeconds: backgroundGraceSeconds
    )
}

/// A client over the real library, unlocked unless asked (the shell's default is `startLocked: true`).
func client(
    _ config: ChartLinkConfig = config(),
    store: SecureStore = MemorySecureStore(),
    browser: AuthBrowser? = nil,
    clock: HostClock? = nil,
    startLocked: Bool = false
) throws -> ChartLinkClient {
    try ChartLinkClient(config: config, secureStore: store, browser: browser, clock: clock, startLocked: startLocked)
}

/// A fresh directory for a database, removed by the test's teardown.
func temporaryDirectory(_ test: XCTestCase, _ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("chartlink-\(name)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

// MARK: - HTTP on URLSession, without following redirects, with a cookie jar

/// Refuses every redirect, so the test sees each 3xx and its `Location` (the app's redirect URI is not fetchable).
final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

/// One browser's HTTP: its own session (no shared cookie storage), cookies kept by hand from `Set-Cookie`.
final class Http: @unchecked Sendable {
    private let session: URLSession
    private let lock = NSLock()
    private var cookies: [String: String] = [:]

    init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        configuration.httpCookieStorage = nil
        configuration.urlCache = nil
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }

    deinit { session.finishTasksAndInvalidate() }

    func send(_ original: URLRequest) async throws -> (HTTPURLResponse, String) {
        var request = original
        let jar = lock.locked { cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ") }
        if !jar.isEmpty { request.setValue(jar, forHTTPHeaderField: "Cookie") }
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { continuation in
            session.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(throwing: error)
                } else if let response {
                    continuation.resume(returning: (data ?? Data(), response))
                } else {
                    continuation.resume(throwing: URLError(.badServerResponse))
                }
            }.resume()
        }
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        if let setCookie = http.value(forHTTPHeaderField: "Set-Cookie"),
            let pair = setCookie.split(separator: ";").first,
            let eq = pair.firstIndex(of: "=")
        {
            let name = pair[..<eq].trimmingCharacters(in: .whitespaces)
            let value = String(pair[pair.index(after: eq)...])
            lock.locked { cookies[name] = value }
        }
        return (http, String(decoding: data, as: UTF8.self))
    }

    func get(_ url: String) async throws -> (HTTPURLResponse, String) {
        guard let url = URL(string: url) else { throw BrowserError.Failed(reason: "bad URL") }
        return try await send(URLRequest(url: url))
    }

    func post(_ url: String, form: [(String, String)]) async throws -> (HTTPURLResponse, String) {
        guard let url = URL(string: url) else { throw BrowserError.Failed(reason: "bad URL") }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(form.map { "\(formEncode($0.0))=\(formEncode($0.1))" }.joined(separator: "&").utf8)
        return try await send(request)
    }
}

func formEncode(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._*")
    return (s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s).replacingOccurrences(of: "%20", with: "+")
}

// MARK: - host capabilities written in Swift

/// A patient in a browser, scripted: completes the portal's login, account choice and consent pages over HTTP and
/// returns the redirect back to the app, as `ASWebAuthenticationSession` would hand it over.
final class PortalBrowser: AuthBrowser, @unchecked Sendable {
    private let username: String
    private let password: String
    private let patient: String?
    private let allow: Bool
    private let lock = NSLock()
    private var count = 0

    /// `allow: false` presses Deny on the consent page.
    init(_ username: String, _ password: String, patient: String? = nil, allow: Bool = true) {
        self.username = username
        self.password = password
        self.patient = patient
        self.allow = allow
    }

    static func daniel() -> PortalBrowser { PortalBrowser("daniel", "daniel-demo", patient: "daniel-chen") }

    var calls: Int { lock.locked { count } }

    func authorize(url: String, redirectUri: String) async throws -> String {
        lock.locked { count += 1 }
        let http = Http()
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host
        else { throw BrowserError.Failed(reason: "not an http URL") }
        let origin = "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")

        let (first, firstPage) = try await http.get(url)
        if let location = first.value(forHTTPHeaderField: "Location") { return location }
        guard let tx = Self.input(firstPage, "tx") else { throw BrowserError.Failed(reason: "no login form") }
        var (_, page) = try await http.post(
            origin + "/portal/login", form: [("tx", tx), ("username", username), ("password", password)])
        if page.contains("Which account are you linking this app to?") {
            guard let who = patient ?? Self.input(page, "patient") else {
                throw BrowserError.Failed(reason: "no account choice")
            }
            (_, page) = try await http.post(origin + "/portal/choose", form: [("tx", tx), ("patient", who)])
        }
        guard page.contains("I have read the statements above") else {
            throw BrowserError.Failed(reason: "no consent page")
        }
        let scopes = Self.inputs(page, "scope")
        let form = [("tx", tx), ("decision", allow ? "allow" : "deny"), ("acknowledged", "yes")]
            + scopes.map { ("scope", $0) }
        let (consent, _) = try await http.post(origin + "/portal/consent", form: form)
        guard consent.statusCode == 303, let location = consent.value(forHTTPHeaderField: "Location") else {
            throw BrowserError.Failed(reason: "consent answered \(consent.statusCode)")
        }
        return location
    }

    static func input(_ page: String, _ name: String) -> String? { inputs(page, name).first }

    /// The `value` of every `<input name="NAME" ... value="...">` of the page.
    static func inputs(_ page: String, _ name: String) -> [String] {
        var found: [String] = []
        var rest = page[...]
        let marker = "name=\"\(name)\""
        while let at = rest.range(of: marker) {
            rest = rest[at.upperBound...]
            let tagEnd = rest.firstIndex(of: ">") ?? rest.endIndex
            let tag = rest[..<tagEnd]
            if let value = tag.range(of: "value=\"") {
                let start = value.upperBound
                if let end = tag[start...].firstIndex(of: "\"") {
                    found.append(unescape(String(tag[start..<end])))
                }
            }
        }
        return found
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// Hands each `authorize` to the next browser in line (one per patient linked).
final class BrowserQueue: AuthBrowser, @unchecked Sendable {
    private let lock = NSLock()
    private var browsers: [AuthBrowser]

    init(_ browsers: AuthBrowser...) { self.browsers = browsers }

    func authorize(url: String, redirectUri: String) async throws -> String {
        let next: AuthBrowser? = lock.locked { browsers.isEmpty ? nil : browsers.removeFirst() }
        guard let next else { throw BrowserError.Failed(reason: "no browser left") }
        return try await next.authorize(url: url, redirectUri: redirectUri)
    }
}

/// A browser the user closes.
final class ClosedBrowser: AuthBrowser, @unchecked Sendable {
    func authorize(url: String, redirectUri: String) async throws -> String { throw BrowserError.Cancelled }
}

/// A clock the test moves (a `HostClock` implemented in Swift).
final class ManualClock: HostClock, @unchecked Sendable {
    private let lock = NSLock()
    private var wall = Int64(Date().timeIntervalSince1970 * 1000)
    private var mono: Int64 = 0

    func advance(seconds: Int64) {
        lock.locked {
            wall += seconds * 1000
            mono += seconds * 1000
        }
    }

    func nowUnixMs() -> Int64 { lock.locked { wall } }
    func monotonicMs() -> Int64 { lock.locked { mono } }
}

/// Collects a client's `events` stream in the background.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [Event] = []
    private var task: Task<Void, Never>?

    init(_ client: ChartLinkClient) {
        // The stream registers with the client's hub here, before any call the test makes.
        let stream = client.events
        task = Task { [weak self] in
            for await event in stream { self?.append(event) }
        }
    }

    private func append(_ event: Event) { lock.locked { seen.append(event) } }

    var events: [Event] { lock.locked { seen } }

    func stop() {
        task?.cancel()
        task = nil
    }

    deinit { task?.cancel() }

    /// The first event that matches, waiting up to `timeout` seconds for it.
    func await(
        _ what: String, timeout: TimeInterval = 5, file: StaticString = #filePath, line: UInt = #line,
        _ match: (Event) -> Bool
    ) async throws -> Event {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = events.first(where: match) { return found }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let names = events.map { String(describing: $0).prefix(while: { $0 != "(" }) }
        XCTFail("no \(what) within \(timeout) s; saw \(names)", file: file, line: line)
        throw TestSetupError("no \(what)")
    }
}

/// The first `count` values of an `AsyncStream`, or fewer if none comes within `timeout` seconds.
func first<T: Sendable>(_ count: Int, of stream: AsyncStream<T>, timeout: TimeInterval = 5) async -> [T] {
    await withTaskGroup(of: [T]?.self) { group in
        group.addTask {
            var values: [T] = []
            for await value in stream {
                values.append(value)
                if values.count == count { break }
            }
            return values
        }
        group.addTask {
            try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
            return nil
        }
        let result = await group.next() ?? nil
        group.cancelAll()
        return result ?? []
    }
}

/// Asserts that `body` throws a `ChartLinkError` for which `matches` is true, and returns it.
@discardableResult
func assertThrowsChartLink(
    _ what: String, file: StaticString = #filePath, line: UInt = #line,
    _ matches: (ChartLinkError) -> Bool, _ body: () async throws -> Void
) async -> ChartLinkError? {
    do {
        try await body()
        XCTFail("\(what): nothing was thrown", file: file, line: line)
    } catch let error as ChartLinkError {
        XCTAssertTrue(matches(error), "\(what): threw \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("\(what): threw a non-ChartLink error \(error)", file: file, line: line)
    }
    return nil
}

extension ChartLinkError {
    var isLocked: Bool { if case .Locked = self { return true } else { return false } }
    var isInvalidInput: Bool { if case .InvalidInput = self { return true } else { return false } }
    var isNetwork: Bool { if case .Network = self { return true } else { return false } }
    var isCancelled: Bool { if case .Cancelled = self { return true } else { return false } }
    var isAuthorization: Bool { if case .Authorization = self { return true } else { return false } }
    var isStorage: Bool { if case .Storage = self { return true } else { return false } }
    var isInternal: Bool { if case .Internal = self { return true } else { return false } }
}

extension Event {
    var isSyncProgress: Bool { if case .syncProgress = self { return true } else { return false } }
    var isSyncFinished: Bool { if case .syncFinished = self { return true } else { return false } }
    var isLockWarning: Bool { if case .lockWarning = self { return true } else { return false } }
    var lockReason: LockReason? { if case .locked(let reason) = self { return reason } else { return nil } }
}

extension NSLock {
    /// `withLock` without its availability floor on Apple platforms.
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Collects the values of an `AsyncStream` in the background.
final class Collector<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [T] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<T>) {
        task = Task { [weak self] in
            for await value in stream { self?.append(value) }
        }
    }

    private func append(_ value: T) { lock.locked { values.append(value) } }

    deinit { task?.cancel() }

    func stop() {
        task?.cancel()
        task = nil
    }

    /// The values so far once there are at least `count` (or all there are after `timeout` seconds).
    func values(atLeast count: Int, timeout: TimeInterval = 5) async -> [T] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let now = lock.locked { values }
            if now.count >= count { return now }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return lock.locked { values }
    }
}

/// The result of `task`, or nil when it has not finished within `seconds` (a hung call fails its test instead of
/// hanging the run; the task is left running).
func outcome<T: Sendable>(of task: Task<T, Error>, within seconds: TimeInterval) async -> Result<T, Error>? {
    let once = Once<Result<T, Error>?>()
    return await withCheckedContinuation { continuation in
        once.set(continuation)
        Task { once.resume(await task.result) }
        Task {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            once.resume(nil)
        }
    }
}

/// Resumes a continuation once, whoever comes first.
private final class Once<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Never>?
    private var early: T?
    private var done = false

    func set(_ continuation: CheckedContinuation<T, Never>) {
        let value: T? = lock.locked {
            if done, let early { self.early = nil; return early }
            self.continuation = continuation
            return nil
        }
        if let value { continuation.resume(returning: value) }
    }

    func resume(_ value: T) {
        let waiting: CheckedContinuation<T, Never>? = lock.locked {
            guard !done else { return nil }
            done = true
            if continuation == nil { early = value }
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: value)
    }
}

/// Test output line by line, so that a run stopped by xtask's timeout still shows where it was.
func lineBufferedOutput() {
    _ = lineBuffered
}

private let lineBuffered: Void = {
    setvbuf(stdout, nil, _IOLBF, 0)
}()
