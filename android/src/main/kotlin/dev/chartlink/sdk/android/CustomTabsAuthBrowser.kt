package dev.chartlink.sdk.android

import android.app.Activity
import android.content.ActivityNotFoundException
import android.content.Context
import android.content.Intent
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import dev.chartlink.sdk.AuthBrowser
import dev.chartlink.sdk.BrowserAvailability
import dev.chartlink.sdk.BrowserException
import kotlin.coroutines.cancellation.CancellationException

/**
 * ChartLink's [AuthBrowser] on Custom Tabs, without AndroidX: a Custom Tab is an ACTION_VIEW intent that carries the
 * documented session extra, sent to a browser that offers the Custom Tabs service. The provider's login and consent
 * pages open in the user's browser (its password manager and saved logins work; the app never sees the password),
 * and the redirect to the app's scheme comes back through [ChartLinkAuthActivity].
 *
 * Browser choice: the default browser if it supports Custom Tabs, else another that does, else any browser (a plain
 * browser window); with none, `link` throws `NoBrowserException` before anything starts. Closing the tab ends the
 * link with `Cancelled`; cancelling the coroutine closes the tab.
 */
class CustomTabsAuthBrowser(private val context: Context) : AuthBrowser, BrowserAvailability {
    override fun isAvailable(): Boolean = chooseBrowser(context) != null

    override suspend fun authorize(url: String, redirectUri: String): String {
        val links = ChartLinkAuthActivity.links
        val pending = links.begin(redirectUri)
        try {
            context.startActivity(
                Intent(context, ChartLinkAuthActivity::class.java)
                    .putExtra(ChartLinkAuthActivity.EXTRA_URL, url)
                    .addFlags(Intent.FLAG_ACTIVITY_NEW_TASK),
            )
            return pending.redirect.await()
        } catch (e: CancellationException) {
            // The app gave up (its coroutine was cancelled): bring the redirect activity back, which closes the tab
            // above it, and finish it.
            if (ChartLinkAuthActivity.alive > 0) {
                runCatching {
                    context.startActivity(
                        Intent(context, ChartLinkAuthActivity::class.java)
                            .putExtra(ChartLinkAuthActivity.EXTRA_CLOSE, true)
                            .addFlags(
                                Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_CLEAR_TOP or
                                    Intent.FLAG_ACTIVITY_SINGLE_TOP,
                            ),
                    )
                }
            }
            throw e
        } finally {
            links.end(pending)
        }
    }

    companion object {
        /** The Custom Tabs service action a supporting browser declares. */
        const val ACTION_CUSTOM_TABS_SERVICE = "android.support.customtabs.action.CustomTabsService"
        /** The extra that makes an ACTION_VIEW intent a Custom Tab (a null binder: no session). */
        const val EXTRA_SESSION = "android.support.customtabs.extra.SESSION"
        const val EXTRA_SHARE_STATE = "androidx.browser.customtabs.extra.SHARE_STATE"
        const val SHARE_STATE_OFF = 2

        private fun probe(): Intent =
            Intent(Intent.ACTION_VIEW, Uri.parse("https://example.org/")).addCategory(Intent.CATEGORY_BROWSABLE)

        /** The browser to open the login in, or null when the device has none (see [BrowserChoice]). */
        @Suppress("DEPRECATION") // the Int-flag overloads work on every API level from minSdk 26
        fun chooseBrowser(context: Context): BrowserChoice.Choice? {
            val pm = context.packageManager
            // "android" is the disambiguation dialog: there is no default browser.
            val default = pm.resolveActivity(probe(), PackageManager.MATCH_DEFAULT_ONLY)
                ?.activityInfo?.packageName?.takeIf { it != "android" }
            val browsers = pm.queryIntentActivities(probe(), PackageManager.MATCH_ALL).map { it.activityInfo.packageName }
            val customTabs = pm.queryIntentServices(Intent(ACTION_CUSTOM_TABS_SERVICE), 0)
                .mapNotNull { it.serviceInfo?.packageName }
                .toSet()
            return BrowserChoice.choose(default, browsers, customTabs)
        }

        /** The intent that shows [url] in [choice]'s browser, as a Custom Tab when it supports them. */
        fun viewIntent(url: String, choice: BrowserChoice.Choice): Intent {
            val intent = Intent(Intent.ACTION_VIEW, Uri.parse(url)).setPackage(choice.packageName)
            if (choice.customTabs) {
                val extras = Bundle()
                extras.putBinder(EXTRA_SESSION, null)
                intent.putExtras(extras)
                intent.putExtra(EXTRA_SHARE_STATE, SHARE_STATE_OFF)
            }
            return intent
        }
    }
}

/**
 * Opens the login in the browser and receives the redirect (the manifest gives it the app's scheme). singleTask: a
 * redirect or a second link reaches the living instance through [onNewIntent], which also closes the tab above it.
 * When the user comes back without a redirect (closed the tab), the link is cancelled.
 */
class ChartLinkAuthActivity : Activity() {
    private var tabOpened = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        alive++
        tabOpened = savedInstanceState?.getBoolean(STATE_TAB_OPENED) ?: false
        // Started by the redirect itself (no instance was waiting), or to close.
        intent?.let { if (it.data != null || it.getBooleanExtra(EXTRA_CLOSE, false)) handle(it) }
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        setIntent(intent)
        if (intent.data != null || intent.getBooleanExtra(EXTRA_CLOSE, false)) {
            handle(intent)
        } else if (intent.hasExtra(EXTRA_URL)) {
            // A second link while this instance lives: onResume opens its tab.
            tabOpened = false
        }
    }

    override fun onResume() {
        super.onResume()
        if (isFinishing) return
        val url = intent?.getStringExtra(EXTRA_URL)
        if (!tabOpened && url != null) {
            tabOpened = true
            val choice = CustomTabsAuthBrowser.chooseBrowser(this)
            try {
                if (choice == null) throw ActivityNotFoundException("no browser")
                startActivity(CustomTabsAuthBrowser.viewIntent(url, choice))
            } catch (e: ActivityNotFoundException) {
                links.fail("no browser is installed or enabled to show the provider's login page")
                finish()
            }
        } else {
            // Back from the tab without a redirect: the user closed it.
            links.cancel()
            finish()
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putBoolean(STATE_TAB_OPENED, tabOpened)
    }

    override fun onDestroy() {
        alive--
        super.onDestroy()
    }

    private fun handle(intent: Intent) {
        // A redirect nobody waits for (the process was killed meanwhile) is kept for
        // ChartLinkAndroid.takeOrphanedRedirect(); one that is not this link's redirect is dropped.
        intent.data?.toString()?.let { links.deliver(it) }
        finish()
    }

    companion object {
        const val EXTRA_URL = "dev.chartlink.sdk.AUTH_URL"
        const val EXTRA_CLOSE = "dev.chartlink.sdk.AUTH_CLOSE"
        private const val STATE_TAB_OPENED = "tabOpened"

        /** The login in progress, shared with [CustomTabsAuthBrowser]. */
        val links = LinkState()

        /** Living instances (main thread only); the browser sends the close intent only to a living one. */
        @Volatile
        internal var alive = 0
    }
}
