import AuthenticationServices
import Foundation

/// ChartLink's `AuthBrowser` on `ASWebAuthenticationSession` (Kotlin: `CustomTabsAuthBrowser`): the provider's
/// login and consent pages in a system browser sheet (the app never sees the password) that closes itself on the
/// redirect back to the app. Closing the sheet ends the link with `BrowserError.Cancelled`; cancelling the Swift
/// task of `link` closes the sheet.
///
/// Redirects: a custom scheme (`myapp://callback`) works on every supported iOS; an https redirect (a universal
/// link of the app's associated domain, `https://app.example.org/callback`) works from iOS 17.4, where the session
/// matches it by host and path (`ASWebAuthenticationSession.Callback.https`). Before 17.4 an https redirect fails
/// with `BrowserError.Failed` before the sheet opens: register a custom scheme for those devices.
public final class WebAuthenticationBrowser: NSObject, AuthBrowser, ASWebAuthenticationPresentationContextProviding,
    @unchecked Sendable
{
    private let anchor: @MainActor () -> ASPresentationAnchor
    private let ephemeral: Bool
    private let lock = NSLock()
    private var session: ASWebAuthenticationSession?

    /// - Parameters:
    ///   - prefersEphemeralSession: no cookies shared with Safari (the portal login is not remembered, and no
    ///     "wants to use … to sign in" alert).
    ///   - anchor: the window to present from.
    public init(
        prefersEphemeralSession: Bool = true,
        anchor: @escaping @MainActor () -> ASPresentationAnchor
    ) {
        self.ephemeral = prefersEphemeralSession
        self.anchor = anchor
    }

    public func authorize(url: String, redirectUri: String) async throws -> String {
        guard let authorizeURL = URL(string: url), let redirect = URL(string: redirectUri),
            let scheme = redirect.scheme?.lowercased()
        else {
            throw BrowserError.Failed(reason: "invalid authorization or redirect URL")
        }
        if scheme == "https" {
            guard #available(iOS 17.4, macOS 14.4, *) else {
                throw BrowserError.Failed(reason: "https (universal link) redirects need iOS 17.4 or later")
            }
            guard redirect.host != nil else {
                throw BrowserError.Failed(reason: "the https redirect URL has no host")
            }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, Error>) in
                Task { @MainActor in
                    self.start(authorizeURL, redirect: redirect, continuation: continuation)
                }
            }
        } onCancel: {
            Task { @MainActor in self.cancel() }
        }
    }

    @MainActor
    private func start(_ url: URL, redirect: URL, continuation: CheckedContinuation<String, Error>) {
        var resumed = false
        let finish: (Result<String, Error>) -> Void = { result in
            guard !resumed else { return }
            resumed = true
            continuation.resume(with: result)
        }
        let completion: ASWebAuthenticationSession.CompletionHandler = { [weak self] callback, error in
            self?.forget()
            if let callback {
                finish(.success(callback.absoluteString))
            } else if let error = error as? ASWebAuthenticationSessionError, error.code == .canceledLogin {
                finish(.failure(BrowserError.Cancelled))
            } else {
                finish(.failure(BrowserError.Failed(reason: error?.localizedDescription ?? "no redirect")))
            }
        }
        let session = Self.session(url: url, redirect: redirect, completion: completion)
        session.presentationContextProvider = self
        session.prefersEphemeralWebBrowserSession = ephemeral
        remember(session)
        if !session.start() {
            forget()
            finish(.failure(BrowserError.Failed(reason: "the authentication session could not start")))
        }
    }

    /// A session that ends on `redirect`: by host and path for https (iOS 17.4+), by scheme otherwise.
    private static func session(
        url: URL, redirect: URL, completion: @escaping ASWebAuthenticationSession.CompletionHandler
    ) -> ASWebAuthenticationSession {
        let scheme = redirect.scheme?.lowercased() ?? ""
        if #available(iOS 17.4, macOS 14.4, *) {
            let callback: ASWebAuthenticationSession.Callback
            if scheme == "https", let host = redirect.host {
                callback = .https(host: host, path: redirect.path.isEmpty ? "/" : redirect.path)
            } else {
                callback = .customScheme(scheme)
            }
            return ASWebAuthenticationSession(url: url, callback: callback, completionHandler: completion)
        }
        return ASWebAuthenticationSession(url: url, callbackURLScheme: scheme, completionHandler: completion)
    }

    @MainActor
    private func cancel() {
        lock.lock()
        let current = session
        lock.unlock()
        current?.cancel()
    }

    private func remember(_ session: ASWebAuthenticationSession) {
        lock.lock()
        self.session = session
        lock.unlock()
    }

    private func forget() {
        lock.lock()
        session = nil
        lock.unlock()
    }

    public func presentationAnchor(for session: ASWebAuthenticationSession) -> ASPresentationAnchor {
        MainActor.assumeIsolated { anchor() }
    }
}
