import Foundation

/// How the login sheet recognises the redirect back to the app (`ASWebAuthenticationSession.Callback`): by scheme
/// for a custom scheme (`myapp://callback`), by host and path for an https universal link
/// (`https://app.example.org/callback`, iOS 17.4+).
public enum AuthCallback: Equatable, Sendable {
    case customScheme(String)
    case https(host: String, path: String)
}

/// The checked URLs of one login, before any sheet opens: what `WebAuthenticationBrowser` does with the URLs
/// ChartLink hands it, kept apart from `ASWebAuthenticationSession` so that it is tested on every platform.
public struct AuthRedirect: Equatable, Sendable {
    /// The provider's authorization URL (http or https) the sheet opens.
    public let authorizeURL: URL
    /// The app's registered redirect URI.
    public let redirect: URL
    /// How the sheet recognises `redirect`.
    public let callback: AuthCallback

    /// Checks `url` and `redirectUri` and picks the callback; throws `BrowserError.Failed` (the link then ends with
    /// `ChartLinkError.Authorization`) when the sheet could not work:
    /// - the authorization URL is not an absolute http(s) URL, or the redirect has no scheme;
    /// - the redirect is plain http (a browser sheet never hands one back to an app);
    /// - the redirect is https but `httpsCallbacks` is false (before iOS 17.4) or the URL has no host.
    public static func check(url: String, redirectUri: String, httpsCallbacks: Bool) throws -> AuthRedirect {
        guard let authorizeURL = URL(string: url),
            let authorizeScheme = authorizeURL.scheme?.lowercased(),
            authorizeScheme == "https" || authorizeScheme == "http",
            authorizeURL.host?.isEmpty == false,
            let redirect = URL(string: redirectUri),
            let scheme = redirect.scheme?.lowercased(), !scheme.isEmpty
        else {
            throw BrowserError.Failed(reason: "invalid authorization or redirect URL")
        }
        switch scheme {
        case "https":
            guard httpsCallbacks else {
                throw BrowserError.Failed(reason: "https (universal link) redirects need iOS 17.4 or later")
            }
            guard let host = redirect.host, !host.isEmpty else {
                throw BrowserError.Failed(reason: "the https redirect URL has no host")
            }
            let path = redirect.path.isEmpty ? "/" : redirect.path
            return AuthRedirect(authorizeURL: authorizeURL, redirect: redirect, callback: .https(host: host, path: path))
        case "http":
            throw BrowserError.Failed(
                reason: "an http redirect cannot return to the app: use a custom scheme or an https universal link")
        default:
            return AuthRedirect(authorizeURL: authorizeURL, redirect: redirect, callback: .customScheme(scheme))
        }
    }
}
