package dev.chartlink.sdk.android

import dev.chartlink.sdk.BrowserException
import kotlinx.coroutines.CompletableDeferred

/**
 * The state of the login shown in the browser, shared by `CustomTabsAuthBrowser` (which waits for the redirect)
 * and `ChartLinkAuthActivity` (which receives it). At most one link is waiting; starting another fails the old one.
 *
 * A redirect that arrives while nobody waits (the process was killed during the login and restarted by the redirect
 * itself) is kept as the orphaned redirect: the app passes it to `completeLink`, and the core finishes the
 * authorization it persisted in the secure store.
 */
class LinkState {
    /** One link waiting for its redirect. */
    class Pending(val redirectUri: String) {
        val redirect = CompletableDeferred<String>()
    }

    enum class Delivery { DELIVERED, ORPHANED, IGNORED }

    private var current: Pending? = null
    private var orphan: String? = null

    /** Whether a link waits for its redirect. */
    val inProgress: Boolean @Synchronized get() = current != null

    @Synchronized
    fun begin(redirectUri: String): Pending {
        current?.redirect?.completeExceptionally(BrowserException.Failed("another link started"))
        orphan = null
        return Pending(redirectUri).also { current = it }
    }

    @Synchronized
    fun end(pending: Pending) {
        if (current === pending) current = null
    }

    /** A URL the redirect activity received. */
    @Synchronized
    fun deliver(uri: String): Delivery {
        val pending = current ?: run {
            orphan = uri
            return Delivery.ORPHANED
        }
        if (!RedirectMatch.matches(uri, pending.redirectUri)) return Delivery.IGNORED
        pending.redirect.complete(uri)
        return Delivery.DELIVERED
    }

    /** The user came back without a redirect (closed the browser). */
    @Synchronized
    fun cancel() {
        current?.redirect?.completeExceptionally(BrowserException.Cancelled())
    }

    /** The browser could not be opened. */
    @Synchronized
    fun fail(reason: String) {
        current?.redirect?.completeExceptionally(BrowserException.Failed(reason))
    }

    /** The redirect that arrived while nobody waited, once. */
    @Synchronized
    fun takeOrphanedRedirect(): String? = orphan.also { orphan = null }
}

/** Which browser opens the login: the user's default when it supports Custom Tabs, else another Custom Tabs browser,
 * else the default browser, else any browser; `null` when the device has none. */
object BrowserChoice {
    class Choice(val packageName: String, val customTabs: Boolean)

    fun choose(defaultBrowser: String?, browsers: List<String>, customTabsBrowsers: Set<String>): Choice? {
        val all = (listOfNotNull(defaultBrowser) + browsers).distinct()
        val tabs = all.firstOrNull { it in customTabsBrowsers }
        return when {
            tabs != null -> Choice(tabs, customTabs = true)
            all.isNotEmpty() -> Choice(all.first(), customTabs = false)
            else -> null
        }
    }
}
