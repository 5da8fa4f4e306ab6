package dev.chartlink.sdk.android

import android.content.Context
import android.os.SystemClock
import dev.chartlink.sdk.AuthBrowser
import dev.chartlink.sdk.ChartLinkClient
import dev.chartlink.sdk.ChartLinkConfig
import dev.chartlink.sdk.HostClock
import dev.chartlink.sdk.SecureStore
import dev.chartlink.sdk.resetChartlink
import java.io.File

/**
 * Builds a [ChartLinkClient] wired to Android: the Keystore-backed [KeystoreSecureStore] (or the app's own
 * [SecureStore]), Custom Tabs for the login ([CustomTabsAuthBrowser]), the device clock that counts through sleep,
 * and the database in `noBackupFilesDir`.
 *
 * With the default [KeystoreSecureStore], the store key needs a recent user authentication (BiometricPrompt or the
 * device credential): authenticate before [create] and before `unlock()`, or they fail with
 * `ChartLinkException.Storage`. When [create] fails with `ChartLinkException.Storage` of kind `WRONG_KEY` (the Keystore key was
 * invalidated, e.g. the screen lock was removed, or the data came from another device), the records cannot be
 * opened again: tell the user, call [reset] and link again.
 */
object ChartLinkAndroid {
    init {
        // JNA loads the library for the generated code; JNI (initTls) needs it registered with the VM as well.
        System.loadLibrary("chartlink_ffi")
    }

    @Volatile
    private var tlsReady = false

    /**
     * Gives core's TLS verifier (rustls-platform-verifier) the app context it needs to reach Android's trust store.
     * [create] calls it; an app that builds [ChartLinkClient] itself calls it first. Idempotent.
     */
    @JvmStatic
    @Synchronized
    fun initialize(context: Context) {
        if (tlsReady) return
        initTls(context.applicationContext)
        tlsReady = true
    }

    fun create(
        context: Context,
        config: ChartLinkConfig,
        secureStore: SecureStore = KeystoreSecureStore(context.applicationContext),
        browser: AuthBrowser = CustomTabsAuthBrowser(context.applicationContext),
        clock: HostClock = DeviceClock,
        startLocked: Boolean = false,
    ): ChartLinkClient {
        initialize(context)
        return ChartLinkClient(withDataDir(context, config), secureStore, browser, clock, startLocked)
    }

    /**
     * Deletes everything ChartLink keeps on this device for [config] (the database, the store key, every account and
     * pending-link entry, and the Keystore keys of a [KeystoreSecureStore]): the way out of a `Storage` error of kind
     * `WRONG_KEY` or `NEWER_VERSION`, or of unreadable entries once the user agreed to start over. Close every client first.
     * Nothing is revoked at the provider.
     */
    fun reset(
        context: Context,
        config: ChartLinkConfig,
        secureStore: SecureStore = KeystoreSecureStore(context.applicationContext),
    ) {
        initialize(context)
        resetChartlink(withDataDir(context, config), secureStore)
        (secureStore as? KeystoreSecureStore)?.deleteKeystoreKeys()
    }

    /**
     * The login redirect that arrived while no link waited for it: the process was killed while the user was in
     * the browser and restarted by the redirect. Pass it to `completeLink` (once the client exists): the pending
     * authorization was kept in the secure store. Null when there is none; returns it once.
     */
    fun takeOrphanedRedirect(): String? = ChartLinkAuthActivity.links.takeOrphanedRedirect()

    private fun withDataDir(context: Context, config: ChartLinkConfig): ChartLinkConfig {
        val app = context.applicationContext
        val dataDir = config.dataDir ?: File(app.noBackupFilesDir, "chartlink").apply { mkdirs() }.path
        return config.copy(dataDir = dataDir)
    }

    @JvmStatic
    private external fun initTls(context: Context)
}

/** Wall time, and `elapsedRealtime`, which keeps counting while the device sleeps (the idle lock needs that). */
object DeviceClock : HostClock {
    override fun nowUnixMs(): Long = System.currentTimeMillis()
    override fun monotonicMs(): Long = SystemClock.elapsedRealtime()
}
