package dev.chartlink.sdk

import java.util.concurrent.CopyOnWriteArrayList
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.transformLatest
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch

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
 * Reads (`labResults`, `summary`, `patients`, ...) are `suspend`: SQLite and decryption run on the SDK's blocking
 * pool, never on the caller's thread, so calling them from `Dispatchers.Main` is fine. Cancelling the coroutine of a
 * long call (`link`, `sync`, ...) cancels the Rust work (it throws [ChartLinkException.Cancelled] inside Rust and
 * the coroutine ends with a `CancellationException`); a [CancelToken] passed as `cancel` cancels it from anywhere
 * else (a Cancel button) and the call throws [ChartLinkException.Cancelled].
 *
 * A link in progress is not "background": while the provider's login is open (in [link], or between [beginLink]
 * and [completeLink]) [onBackground] is held back (see [BackgroundGate]), so a slow login does not lock the SDK.
 *
 * Errors are [ChartLinkException] subclasses (`Locked`, `Network`, `Cancelled`, ...); [link] also throws
 * [NoBrowserException]. Close the client when the app no longer needs it (it stops the idle timer, runs the
 * [doOnClose] actions such as uninstalling the lifecycle observer, and frees the Rust object).
 */
class ChartLinkClient private constructor(
    /** The generated object, for anything this class does not wrap. */
    val sdk: ChartLink,
    private val hub: EventHub,
    private val browser: AuthBrowser?,
    clock: HostClock?,
) : ChartLinkInterface by sdk, AutoCloseable {

    /**
     * Builds the SDK (see [ChartLink]'s constructor): fails with [ChartLinkException.InvalidInput] for a bad
     * configuration, [ChartLinkException.Storage] when the secure store cannot be used (kind
     * [StorageKind.WRONG_KEY] when its key does not open the database) (see `resetChartlink`). With
     * [startLocked] the store key is not read (no biometric prompt while the app starts): reads throw
     * [ChartLinkException.Locked] until `unlockAsync()`.
     */
    constructor(
        config: ChartLinkConfig,
        secureStore: SecureStore,
        browser: AuthBrowser? = null,
        clock: HostClock? = null,
        startLocked: Boolean = false,
    ) : this(config, secureStore, browser, clock, EventHub(), startLocked)

    private constructor(
        config: ChartLinkConfig,
        secureStore: SecureStore,
        browser: AuthBrowser?,
        clock: HostClock?,
        hub: EventHub,
        startLocked: Boolean,
    ) : this(
        if (startLocked) {
            ChartLink.newLocked(config, secureStore, browser, hub, clock)
        } else {
            ChartLink(config, secureStore, browser, hub, clock)
        },
        hub,
        browser,
        clock,
    )

    /** Everything the SDK reports: sync progress and results, lock warnings, locked/unlocked, revoked access. */
    val events: Flow<Event> = hub.events()

    /** How many collectors of [events] are active. */
    val eventCollectors: Int get() = hub.collectors

    /** Runs the state refreshes that read the store (off the caller's thread); cancelled by [close]. */
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    private val lockFlow = MutableStateFlow(runCatching { sdk.locked() }.getOrNull())
    private val patientFlow = MutableStateFlow<PatientContext?>(null)

    /**
     * Why the SDK is locked, or null while it is unlocked: observable state that starts with the current value
     * (collect it to show or hide the lock screen; [events] has the same changes as one-off events).
     */
    val lockState: StateFlow<LockReason?> = lockFlow.asStateFlow()

    /**
     * The patient whose record the reads show, or null (none linked, or locked: who the record belongs to is not
     * shown while locked either). Follows [switchPatient], links, unlinks, syncs, lock and unlock.
     */
    val activePatientState: StateFlow<PatientContext?> = patientFlow.asStateFlow()

    /** Counts the changes that may change what a read answers (see [live]). */
    private val version = MutableStateFlow(0L)

    private fun changed() = version.update { it + 1 }

    /**
     * A read as live state, as Room's `Flow` queries are: emits [read]'s answer now, and again whenever a sync, an
     * unlock (which applies what locked syncs brought), a patient switch, a merge, a link or an unlink may have
     * changed it (equal answers are not repeated). While locked it emits nothing — the records are not readable —
     * and after unlock it emits again. Any other failure of [read] ends the flow with its exception.
     *
     * ```kotlin
     * chartLink.live { labResults() }.collect { labs -> screen.show(labs) }
     * ```
     */
    @OptIn(kotlinx.coroutines.ExperimentalCoroutinesApi::class)
    fun <T> live(read: suspend ChartLinkClient.() -> T): Flow<T> =
        version
            .transformLatest {
                try {
                    emit(read())
                } catch (e: ChartLinkException.Locked) {
                    // Nothing to show until unlock, which emits again.
                }
            }
            .distinctUntilChanged()

    init {
        hub.observe { event ->
            when (event) {
                is Event.Locked -> {
                    lockFlow.value = event.reason
                    patientFlow.value = null
                }
                is Event.Unlocked -> {
                    lockFlow.value = null
                    refreshPatientLater()
                    changed()
                }
                // A sync may bring the patient's name and details.
                is Event.SyncFinished -> {
                    refreshPatientLater()
                    changed()
                }
                // An unlocked background run wrote readable records (a locked one is applied after unlock).
                is Event.BackgroundSyncFinished -> if (!event.report.locked) changed()
                // What locked runs brought was applied (after `unlock` or `new` returned): the records changed.
                is Event.LockedInboxApplied -> {
                    refreshPatientLater()
                    changed()
                }
                else -> {}
            }
        }
        refreshPatientLater()
    }

    /** Reads the active patient (a store read: suspend, on the SDK's pool); null when locked or none. */
    private suspend fun currentPatient(): PatientContext? =
        try {
            sdk.activePatient()
        } catch (e: ChartLinkException) {
            null
        }

    private suspend fun refreshPatient() {
        val patient = currentPatient()
        // A lock that came while reading wins: who the record belongs to is not shown while locked.
        patientFlow.value = if (lockFlow.value == null) patient else null
    }

    /** The event callbacks arrive on an SDK thread that must not wait for a read: refresh in [scope]. */
    private fun refreshPatientLater() {
        scope.launch { refreshPatient() }
    }

    override suspend fun switchPatient(contextId: String): PatientContext =
        sdk.switchPatient(contextId).also {
            patientFlow.value = it
            changed()
        }

    override suspend fun confirmMerge(contextIds: List<String>): PatientContext =
        sdk.confirmMerge(contextIds).also {
            refreshPatient()
            changed()
        }

    override suspend fun splitPatient(contextId: String) {
        sdk.splitPatient(contextId)
        refreshPatient()
        changed()
    }

    override suspend fun unlink(accountId: String, cancel: CancelToken?): UnlinkOutcome =
        sdk.unlink(accountId, cancel).also {
            refreshPatient()
            changed()
        }

    override suspend fun sync(accountId: String, cancel: CancelToken?): SyncReport =
        sdk.sync(accountId, cancel).also { refreshPatient() }

    override suspend fun unlockAsync() {
        sdk.unlockAsync()
        lockFlow.value = sdk.locked()
        refreshPatient()
    }

    private var idleTimer: SubscriptionHandle? = null
    private val gate = BackgroundGate({ clock?.monotonicMs() ?: (System.nanoTime() / 1_000_000) })
    private val appDrivenLink = Any()
    private val closeActions = CopyOnWriteArrayList<() -> Unit>()

    /**
     * Links in one call (see [ChartLink.link]). Throws [NoBrowserException] before anything starts when the
     * browser says it cannot open; the app is not reported in the background while the login is open.
     */
    override suspend fun link(fhirBase: String, cancel: CancelToken?): LinkedAccount {
        if ((browser as? BrowserAvailability)?.isAvailable() == false) throw NoBrowserException()
        val token = Any()
        gate.linkStarted(token)
        try {
            return sdk.link(fhirBase, cancel).also {
                refreshPatient()
                changed()
            }
        } finally {
            if (gate.linkEnded(token)) reportBackground()
        }
    }

    /** Starts an app-driven link (see [ChartLink.beginLink]); until [completeLink] or [cancelLink] it holds back the
     * background report, at most 15 minutes. */
    override suspend fun beginLink(fhirBase: String, cancel: CancelToken?): AuthorizationRequest {
        val request = sdk.beginLink(fhirBase, cancel)
        gate.linkStarted(appDrivenLink)
        return request
    }

    override suspend fun completeLink(redirectUrl: String, cancel: CancelToken?): LinkedAccount {
        try {
            return sdk.completeLink(redirectUrl, cancel).also {
                refreshPatient()
                changed()
            }
        } finally {
            if (gate.linkEnded(appDrivenLink)) reportBackground()
        }
    }

    override fun cancelLink() {
        try {
            sdk.cancelLink()
        } finally {
            if (gate.linkEnded(appDrivenLink)) reportBackground()
        }
    }

    /**
     * The app is visible: report it (this may lock after a long absence) and start the idle timer. The timer is
     * best effort: if it cannot start, the lock is still evaluated on every call.
     */
    @Synchronized
    fun onForeground() {
        gate.foreground()
        sdk.appForegrounded()
        if (idleTimer == null) idleTimer = runCatching { sdk.startIdleTimer() }.getOrNull()
    }

    /**
     * The app left the screen: stop the idle timer and start the background grace period — unless a link is in
     * progress, in which case this happens when it ends (if the app is still away then).
     */
    @Synchronized
    fun onBackground() {
        if (gate.background()) reportBackground()
    }

    /** Whether a link in progress holds back the background report now. */
    val backgroundHeldByLink: Boolean get() = gate.holding

    @Synchronized
    private fun reportBackground() {
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

    /** Runs [action] when the client is closed (the Android lifecycle observer uninstalls itself this way). */
    fun doOnClose(action: () -> Unit) {
        closeActions.add(action)
    }

    /** Stops the idle timer, runs the [doOnClose] actions and frees the Rust object; unusable afterwards. */
    override fun close() {
        scope.cancel()
        stopIdleTimer()
        for (action in closeActions) runCatching(action)
        closeActions.clear()
        sdk.close()
    }
}
