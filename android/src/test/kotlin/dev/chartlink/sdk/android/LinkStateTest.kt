package dev.chartlink.sdk.android

import dev.chartlink.sdk.BackgroundGate
import dev.chartlink.sdk.BrowserException
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class LinkStateTest {
    private val links = LinkState()

    @Test
    fun `the redirect reaches the waiting link`() = runBlocking<Unit> {
        val pending = links.begin("chartlink-demo://callback")
        assertTrue(links.inProgress)
        assertEquals(LinkState.Delivery.IGNORED, links.deliver("chartlink-demo://callbackevil?code=1"))
        assertEquals(LinkState.Delivery.DELIVERED, links.deliver("chartlink-demo://callback?code=1&state=s"))
        assertEquals("chartlink-demo://callback?code=1&state=s", pending.redirect.await())
        links.end(pending)
        assertFalse(links.inProgress)
    }

    @Test
    fun `a second link fails the first, and ending the first leaves the second`() = runBlocking<Unit> {
        val first = links.begin("chartlink-demo://callback")
        val second = links.begin("chartlink-demo://callback")
        assertThrows<BrowserException.Failed> { runBlocking { first.redirect.await() } }
        links.end(first)
        assertTrue(links.inProgress)
        links.cancel()
        assertThrows<BrowserException.Cancelled> { runBlocking { second.redirect.await() } }
    }

    @Test
    fun `a redirect nobody waits for is kept once for the app`() {
        assertEquals(LinkState.Delivery.ORPHANED, links.deliver("chartlink-demo://callback?code=1"))
        assertEquals("chartlink-demo://callback?code=1", links.takeOrphanedRedirect())
        assertNull(links.takeOrphanedRedirect())
    }

    @Test
    fun `no browser fails the waiting link`() {
        val pending = links.begin("chartlink-demo://callback")
        links.fail("no browser")
        val e = assertThrows<BrowserException.Failed> { runBlocking { pending.redirect.await() } }
        assertTrue(e.message!!.contains("no browser"))
    }

    @Test
    fun `browser choice prefers Custom Tabs, then any browser, else none`() {
        val tabs = setOf("com.android.chrome", "org.mozilla.firefox")
        assertEquals("org.mozilla.firefox", BrowserChoice.choose("org.mozilla.firefox", listOf("com.android.chrome"), tabs)!!.packageName)
        val fallback = BrowserChoice.choose("com.plain.browser", listOf("com.plain.browser", "com.android.chrome"), tabs)!!
        assertEquals("com.android.chrome", fallback.packageName)
        assertTrue(fallback.customTabs)
        val plain = BrowserChoice.choose(null, listOf("com.plain.browser"), tabs)!!
        assertEquals("com.plain.browser", plain.packageName)
        assertFalse(plain.customTabs)
        assertNull(BrowserChoice.choose(null, emptyList(), tabs))
    }

    @Test
    fun `a link in progress holds the background back until it ends`() {
        var now = 0L
        val gate = BackgroundGate({ now }, maxLinkMs = 60_000)
        val link = Any()
        gate.linkStarted(link)
        assertFalse(gate.background(), "the browser's tab covers the app: not background")
        assertTrue(gate.holding)
        assertTrue(gate.linkEnded(link), "still away when the link ended: report it now")
        assertFalse(gate.background(), "reported once")
        gate.foreground()

        gate.linkStarted(link)
        gate.background()
        gate.foreground() // back from the browser with the redirect
        assertFalse(gate.linkEnded(link), "in the foreground: nothing to report")

        gate.linkStarted(link)
        now += 60_001
        assertTrue(gate.background(), "a link older than the limit holds nothing back")
    }
}
