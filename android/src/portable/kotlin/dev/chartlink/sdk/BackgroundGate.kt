package dev.chartlink.sdk

/**
 * Decides when "the app went to the background" reaches the SDK. A login in the browser sends the app to the
 * background (the browser's tab covers it) for as long as the portal takes; reporting that would start the
 * background grace and lock the SDK on return, wasting the authorization code. So while a link is in progress the
 * report is held back, and made when the link ends if the app is still in the background then. A link older than
 * [maxLinkMs] (an app-driven `beginLink` that was never completed) no longer holds it back. The idle lock keeps
 * running meanwhile.
 */
class BackgroundGate(private val nowMs: () -> Long, private val maxLinkMs: Long = 15 * 60_000L) {
    private val links = HashMap<Any, Long>()
    private var inBackground = false
    private var reported = false

    /** Whether a link holds the background report back now. */
    val holding: Boolean @Synchronized get() = inBackground && !reported && activeLinks() > 0

    @Synchronized
    fun linkStarted(token: Any) {
        links[token] = nowMs()
    }

    /** Returns whether the background must be reported now (the app is still away). */
    @Synchronized
    fun linkEnded(token: Any): Boolean {
        links.remove(token)
        return due()
    }

    /** The app went to the background; returns whether to report it now. */
    @Synchronized
    fun background(): Boolean {
        inBackground = true
        return due()
    }

    /** The app came back. */
    @Synchronized
    fun foreground() {
        inBackground = false
        reported = false
    }

    private fun due(): Boolean {
        if (!inBackground || reported || activeLinks() > 0) return false
        reported = true
        return true
    }

    private fun activeLinks(): Int {
        val now = nowMs()
        links.entries.removeAll { now - it.value > maxLinkMs }
        return links.size
    }
}

/** An [AuthBrowser] that can tell before a link whether it can open at all (Android: is there any browser). */
interface BrowserAvailability {
    fun isAvailable(): Boolean
}

/** `link` found no browser to show the provider's login in: ask the user to install or enable one. No link was
 * started. */
class NoBrowserException : Exception("no browser is installed or enabled to show the provider's login page")
