package dev.chartlink.sdk

import kotlinx.coroutines.flow.Flow

/**
 * ChartLink for a Kotlin app: the generated [ChartLink] (every method of [ChartLinkInterface] is available here:
 * `link`, `sync`, `labResults`, `lock`, ...) plus what Kotlin adds — the events as a [Flow], and the idle timer
 * tied to the app being in the foreground.
 *
 * Platform-independent: on Android, `ChartLinkAndroid.create(context, config)` builds one with the Keystore,
 * Custom Tabs and the device clock, and `ChartLinkLifecycleObserver` calls [onForeground]/[onBackground]. The
 * host tests build one on the JVM with a [MemorySecureStore].
 *
 * ```kotlin
 * val client = ChartLinkClient(config, secureStore, browser)
 * scope.launch { client.events.collect { event -> render(event) } }
 * val account = client.link("https://fhir.example.org/api/FHIR/R4")
 * client.sync(account.id)
 * val labs = client.labResults()
 * ```
 *
 * Errors are [ChartLinkException] subclasses (`Locked`, `Network`, `Cancelled`, ...). Close the client when the
 * app no longer needs it (it stops the idle timer and frees the Rust object).
 */
class ChartLinkClient private constructor(
    /** The generated object, for anything this class does not wrap. */
    val sdk: ChartLink,
    private val hub: EventHub,
) : ChartLinkInterface by sdk, AutoCloseable {

    /**
     * Builds the SDK (see [ChartLink]'s constructor): fails with [ChartLinkException.InvalidInput] for a bad
     * configuration and [ChartLinkException.Storage] when the secure store cannot be used.
     */
    constructor(
        config: ChartLinkConfig,
        secureStore: SecureStore,
        browser: AuthBrowser? = null,
        clock: HostClock? = null,
    ) : this(config, secureStore, browser, clock, EventHub())

    private constructor(
        config: ChartLinkConfig,
        secureStore: SecureStore,
        browser: AuthBrowser?,
        clock: HostClock?,
        hub: EventHub,
    ) : this(ChartLink(config, secureStore, browser, hub, clock), hub)

    /** Everything the SDK reports: sync progress and results, lock warnings, locked/unlocked, revoked access. */
    val events: Flow<Event> = hub.events()

    /** How many collectors of [events] are active. */
    val eventCollectors: Int get() = hub.collectors

    private var idleTimer: SubscriptionHandle? = null

    /**
     * The app is visible: report it (this may lock after a long absence) and start the idle timer. The timer is
     * best effort: if it cannot start, the lock is still evaluated on every call.
     */
    @Synchronized
    fun onForeground() {
        sdk.appForegrounded()
        if (idleTimer == null) idleTimer = runCatching { sdk.startIdleTimer() }.getOrNull()
    }

    /** The app left the screen: stop the idle timer and start the background grace period. */
    @Synchronized
    fun onBackground() {
        stopIdleTimer()
        sdk.appBackgrounded()
    }

    /** Whether the idle timer runs. */
    val idleTimerRunning: Boolean
        @Synchronized get() = idleTimer?.isActive() == true

    @Synchronized
    private fun stopIdleTimer() {
        idleTimer?.let {
            it.cancel()
            it.close()
        }
        idleTimer = null
    }

    /** Stops the idle timer and frees the Rust object; the client is unusable afterwards. */
    override fun close() {
        stopIdleTimer()
        sdk.close()
    }
}
