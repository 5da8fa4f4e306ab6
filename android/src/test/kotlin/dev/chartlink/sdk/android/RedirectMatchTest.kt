package dev.chartlink.sdk.android

import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class RedirectMatchTest {
    private val redirect = "chartlink-demo://callback"

    @Test
    fun `the redirect with its query or fragment matches`() {
        assertTrue(RedirectMatch.matches("chartlink-demo://callback?code=abc&state=xyz", redirect))
        assertTrue(RedirectMatch.matches("chartlink-demo://callback#frag", redirect))
        assertTrue(RedirectMatch.matches("CHARTLINK-DEMO://CallBack?code=1", redirect), "scheme and host ignore case")
        assertTrue(RedirectMatch.matches("https://app.example.org/cb?code=1", "https://app.example.org/cb"))
        assertTrue(RedirectMatch.matches("https://app.example.org/?code=1", "https://app.example.org"))
        assertTrue(RedirectMatch.matches("myapp:/oauth?code=1", "myapp:/oauth"))
    }

    @Test
    fun `a URL that only starts like the redirect does not`() {
        assertFalse(RedirectMatch.matches("chartlink-demo://callbackevil?code=abc", redirect))
        assertFalse(RedirectMatch.matches("chartlink-demo://callback.evil.example/?code=abc", redirect))
        assertFalse(RedirectMatch.matches("chartlink-demo://callback/other?code=abc", redirect))
        assertFalse(RedirectMatch.matches("https://app.example.org/cb/x?code=1", "https://app.example.org/cb"))
        assertFalse(RedirectMatch.matches("https://app.example.org:8443/cb?code=1", "https://app.example.org/cb"))
        assertFalse(RedirectMatch.matches("other://callback?code=1", redirect))
        assertFalse(RedirectMatch.matches("not a url", redirect))
        assertFalse(RedirectMatch.matches("chartlink-demo:callback?code=1", redirect))
    }
}
