package dev.chartlink.sdk.android

import android.app.Activity
import android.content.Context
import android.content.Intent
import android.net.Uri
import android.os.Bundle
import androidx.browser.customtabs.CustomTabsIntent
import dev.chartlink.sdk.AuthBrowser
import dev.chartlink.sdk.BrowserException
import kotlinx.coroutines.CompletableDeferred

/**
 * ChartLink's [AuthBrowser] on Custom Tabs: the provider's login and consent pages open in the user's browser (its
 * password manager and saved logins work; the app never sees the password), and the redirect to the app's scheme
 * comes back through [ChartLinkAuthActivity]. Closing the tab ends the link with `BrowserException.Cancelled`.
 */
class CustomTabsAuthBrowser(private val context: Context) : AuthBrowser {
    override suspend fun authorize(url: String, redirectUri: String): String {
        val pending = ChartLinkAuthActivity.Pending(redirectUri)
        ChartLinkAuthActivity.begin(pending)
        try {
            context.startActivity(
                Intent(context, ChartLinkAuthActivity::class.java)
                    .putExtra(ChartLinkAuthActivity.EXTRA_URL, url)
                    .addFlags(Intent.FLAG_ACTIVITY_NEW_TASK),
            )
            return pending.redirect.await()
        } finally {
            ChartLinkAuthActivity.end(pending)
        }
    }
}

/**
 * Opens the Custom Tab and receives the redirect (the manifest gives it the app's scheme). When the user comes back
 * without a redirect (closed the tab), the link is cancelled.
 */
class ChartLinkAuthActivity : Activity() {
    class Pending(val redirectUri: String) {
        val redirect = CompletableDeferred<String>()
    }

    private var tabOpened = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        tabOpened = savedInstanceState?.getBoolean(STATE_TAB_OPENED) ?: false
        // Started by the redirect itself (no instance was waiting).
        intent?.takeIf { it.data != null }?.let(::deliver)
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        deliver(intent)
    }

    override fun onResume() {
        super.onResume()
        if (isFinishing) return
        val url = intent?.getStringExtra(EXTRA_URL)
        if (!tabOpened && url != null) {
            tabOpened = true
            CustomTabsIntent.Builder()
                .setShareState(CustomTabsIntent.SHARE_STATE_OFF)
                .build()
                .launchUrl(this, Uri.parse(url))
        } else {
            // Back from the tab without a redirect: the user closed it.
            current?.redirect?.completeExceptionally(BrowserException.Cancelled())
            finish()
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        outState.putBoolean(STATE_TAB_OPENED, tabOpened)
    }

    private fun deliver(intent: Intent) {
        val uri = intent.data?.toString()
        val pending = current
        if (uri != null && pending != null && uri.startsWith(pending.redirectUri)) {
            pending.redirect.complete(uri)
        }
        // A redirect nobody waits for (the process was killed meanwhile) is dropped: the app links again.
        finish()
    }

    companion object {
        const val EXTRA_URL = "dev.chartlink.sdk.AUTH_URL"
        private const val STATE_TAB_OPENED = "tabOpened"

        @Volatile
        private var current: Pending? = null

        internal fun begin(pending: Pending) {
            current?.redirect?.completeExceptionally(BrowserException.Failed("another link started"))
            current = pending
        }

        internal fun end(pending: Pending) {
            if (current === pending) current = null
        }
    }
}
