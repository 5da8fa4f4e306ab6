import AuthenticationServices
import Foundation

/// ChartLink's `AuthBrowser` on `ASWebAuthenticationSession` (Kotlin: `CustomTabsAuthBrowser`): the provider's
/// login and consent pages in a system browser sheet (the app never sees the password) that closes itself on the
/// redirect to the app's scheme. Closing the sheet ends the link with `BrowserError.Cancelled`; cancelling the Swift
/// task of `link` closes the sheet.
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
        guard let authorizeURL = URL(string: url), let scheme = URL(string: redirectUri)?.scheme else {
            throw BrowserError.Failed(reason: "invalid authorization or redirect URL")
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, Error>) in
                Task { @MainActor in
                    self.start(authorizeURL, scheme: scheme, continuation: continuation)
                }
            }
        } onCancel: {
            Task { @MainActor in self.cancel() }
        }
    }

    @MainActor
    private func start(_ url: URL, scheme: String, continuation: CheckedContinuation<String, Error>) {
        var resumed = false
        let finish: (Result<String, Error>) -> Void = { result in
            guard !resumed else { return }
            resumed = true
            continuation.resume(with: result)
        }
        let session = ASWebAuthenticationSession(url: url, callbackURLScheme: scheme) { [weak self] callback, error in
            self?.forget()
            if let callback {
                finish(.success(callback.absoluteString))
            } else if let error = error as? ASWebAuthenticationSessionError, error.code == .canceledLogin {
                finish(.failure(BrowserError.Cancelled))
            } else {
                finish(.failure(BrowserError.Failed(reason: error?.localizedDescription ?? "no redirect")))
            }
        }
        session.presentationContextProvider = self
        session.prefersEphemeralWebBrowserSession = ephemeral
        remember(session)
        if !session.start() {
            forget()
            finish(.failure(BrowserError.Failed(reason: "the authentication session could not start")))
        }
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
