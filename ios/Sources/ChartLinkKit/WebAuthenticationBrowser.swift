#if canImport(AuthenticationServices)
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
        // The checks are portable (AuthRedirect.swift, tested on Linux); only the session is Apple's.
        let httpsCallbacks: Bool
        if #available(iOS 17.4, macOS 14.4, *) { httpsCallbacks = true } else { httpsCallbacks = false }
        let checked = try AuthRedirect.check(url: url, redirectUri: redirectUri, httpsCallbacks: httpsCallbacks)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, Error>) in
                Task { @MainActor in
                    self.start(checked, continuation: continuation)
                }
            }
        } onCancel: {
            Task { @MainActor in self.cancel() }
        }
    }

    @MainActor
    private func start(_ checked: AuthRedirect, continuation: CheckedContinuation<String, Error>) {
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
        let session = Self.session(checked, completion: completion)
        session.presentationContextProvider = self
        session.prefersEphemeralWebBrowserSession = ephemeral
        remember(session)
        if !session.start() {
            forget()
            finish(.failure(BrowserError.Failed(reason: "the authentication session could not start")))
        }
    }

    /// A session that ends on the redirect: by host and path for https (iOS 17.4+), by scheme otherwise.
    private static func session(
        _ checked: AuthRedirect, completion: @escaping ASWebAuthenticationSession.CompletionHandler
    ) -> ASWebAuthenticationSession {
        if #available(iOS 17.4, macOS 14.4, *) {
            let callback: ASWebAuthenticationSession.Callback
            switch checked.callback {
            case .https(let host, let path): callback = .https(host: host, path: path)
            case .customScheme(let scheme): callback = .customScheme(scheme)
            }
            return ASWebAuthenticationSession(url: checked.authorizeURL, callback: callback, completionHandler: completion)
        }
        // Before 17.4 `AuthRedirect.check` lets only custom schemes through.
        return ASWebAuthenticationSession(
            url: checked.authorizeURL, callbackURLScheme: checked.redirect.scheme?.lowercased(),
            completionHandler: completion)
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
#endif
