package dev.chartlink.sdk.android

import java.net.URI

/**
 * Whether a URL the app received is the redirect of a login: the same scheme and host (case-insensitive), port and
 * path as the configured `redirectUri`, followed by nothing but a query or fragment. A prefix test would also accept
 * `myapp://callback.evil/…` or `myapp://callbackother`.
 */
object RedirectMatch {
    fun matches(received: String, redirectUri: String): Boolean {
        val got = parse(received) ?: return false
        val want = parse(redirectUri) ?: return false
        if (!got.scheme.equals(want.scheme, ignoreCase = true)) return false
        if (want.isOpaque || got.isOpaque) {
            return got.isOpaque == want.isOpaque &&
                got.rawSchemeSpecificPart.substringBefore('?') == want.rawSchemeSpecificPart.substringBefore('?')
        }
        return got.rawAuthority?.lowercase() == want.rawAuthority?.lowercase() &&
            path(got) == path(want)
    }

    private fun parse(uri: String): URI? = runCatching { URI(uri) }.getOrNull()?.takeIf { it.scheme != null }

    private fun path(uri: URI): String = uri.rawPath.orEmpty().ifEmpty { "/" }
}
