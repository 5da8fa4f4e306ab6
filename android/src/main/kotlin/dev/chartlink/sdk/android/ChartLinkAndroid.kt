package dev.chartlink.sdk.android

import android.content.Context
import android.os.SystemClock
import dev.chartlink.sdk.ChartLinkClient
import dev.chartlink.sdk.ChartLinkConfig
import dev.chartlink.sdk.HostClock
import java.io.File

/**
 * Builds a [ChartLinkClient] wired to Android: the Keystore-backed [KeystoreSecureStore], Custom Tabs for the login
 * ([CustomTabsAuthBrowser]), the device clock that counts through sleep, and the database in `noBackupFilesDir`.
 *
 * With the default [KeystoreSecureStore], the store key needs a recent user authentication (BiometricPrompt or the
 * device credential): authenticate before [create] and before `unlock()`, or they fail with
 * `ChartLinkException.Storage`.
 */
object ChartLinkAndroid {
    init {
        // JNA loads the library for the generated code; JNI (initTls) needs it registered with the VM as well.
        System.loadLibrary("chartlink_ffi")
    }

    fun create(
        context: Context,
        config: ChartLinkConfig,
        secureStore: KeystoreSecureStore = KeystoreSecureStore(context.applicationContext),
    ): ChartLinkClient {
        val app = context.applicationContext
        initTls(app)
        val dataDir = config.dataDir ?: File(app.noBackupFilesDir, "chartlink").apply { mkdirs() }.path
        return ChartLinkClient(
            config.copy(dataDir = dataDir),
            secureStore,
            CustomTabsAuthBrowser(app),
            DeviceClock,
        )
    }

    /** Gives core's TLS verifier (rustls-platform-verifier) the context it needs to reach Android's trust store. */
    @JvmStatic
    private external fun initTls(context: Context)
}

/** Wall time, and `elapsedRealtime`, which keeps counting while the device sleeps (the idle lock needs that). */
object DeviceClock : HostClock {
    override fun nowUnixMs(): Long = System.currentTimeMillis()
    override fun monotonicMs(): Long = SystemClock.elapsedRealtime()
}
