// Host tests of the generated Kotlin bindings and the platform-independent Kotlin shell, on the JVM with JNA,
// against the local sandbox EHR. Run by `cargo xtask bindings`, which builds libchartlink_ffi, generates the Kotlin,
// starts the sandbox and passes:
//   -Djna.library.path=<dir of libchartlink_ffi.so>   -Dchartlink.sandbox=http://127.0.0.1:<port>
//
// They prove the bindings, not core (core has its own tests): linking through a Kotlin AuthBrowser that completes
// the portal's pages over HTTP, sync with the event Flow, typed records, switching patients, the lock, typed
// errors as Kotlin exceptions, a Kotlin SecureStore, listener and clock, cancellation, a Rust panic arriving
// as an exception, a pending link completed in a fresh client (process death), a slow login not counted as
// background, and the typed "no browser" error.
package dev.chartlink.sdk.test

import dev.chartlink.sdk.*
import java.net.CookieManager
import java.net.CookiePolicy
import java.net.URI
import java.net.URLEncoder
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong
import kotlin.system.exitProcess
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.test.fail
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout

val SANDBOX: String = System.getProperty("chartlink.sandbox")
    ?: error("set -Dchartlink.sandbox=http://127.0.0.1:<port> (cargo xtask bindings does)")
val FHIR_BASE = "$SANDBOX/fhir"
const val HBA1C = "4548-4"

fun config(
    lockTimeoutSeconds: Long = 600,
    lockWarningSeconds: Long = 60,
    backgroundGraceSeconds: Long = 30,
) = ChartLinkConfig(
    clientId = "chartlink-demo",
    redirectUri = "chartlink-demo://callback",
    appName = "Kotlin host tests",
    lockTimeoutSeconds = lockTimeoutSeconds,
    lockWarningSeconds = lockWarningSeconds,
    backgroundGraceSeconds = backgroundGraceSeconds,
)

// ---- host capabilities written in Kotlin ------------------------------------------------------------------------

/**
 * A patient in a browser, scripted: completes the portal's login, account choice and consent pages over HTTP and
 * returns the redirect back to the app, as Custom Tabs would hand it to the redirect activity.
 */
class PortalBrowser(
    private val username: String,
    private val password: String,
    private val patient: String? = null,
    /** Allow Access, or Deny. */
    private val allow: Boolean = true,
) : AuthBrowser {
    val calls = AtomicLong()

    override suspend fun authorize(url: String, redirectUri: String): String = withContext(Dispatchers.IO) {
        calls.incrementAndGet()
        val http = HttpClient.newBuilder()
            .cookieHandler(CookieManager(null, CookiePolicy.ACCEPT_ALL))
            .followRedirects(HttpClient.Redirect.NEVER)
            .build()
        val origin = URI(url).let { "${it.scheme}://${it.authority}" }
        fun get(u: String) = http.send(HttpRequest.newBuilder(URI(u)).GET().build(), HttpResponse.BodyHandlers.ofString())
        fun post(path: String, form: List<Pair<String, String>>): HttpResponse<String> {
            val body = form.joinToString("&") { (k, v) ->
                URLEncoder.encode(k, Charsets.UTF_8) + "=" + URLEncoder.encode(v, Charsets.UTF_8)
            }
            val request = HttpRequest.newBuilder(URI("$origin$path"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build()
            return http.send(request, HttpResponse.BodyHandlers.ofString())
        }

        val first = get(url)
        first.headers().firstValue("location").orElse(null)?.let { return@withContext it }
        val tx = input(first.body(), "tx") ?: throw BrowserException.Failed("no login form")
        var page = post("/portal/login", listOf("tx" to tx, "username" to username, "password" to password)).body()
        if (page.contains("Which account are you linking this app to?")) {
            val who = patient ?: input(page, "patient") ?: throw BrowserException.Failed("no account choice")
            page = post("/portal/choose", listOf("tx" to tx, "patient" to who)).body()
        }
        if (!page.contains("I have read the statements above")) throw BrowserException.Failed("no consent page")
        val scopes = Regex("name=\"scope\"[^>]*?value=\"([^\"]*)\"").findAll(page).map { unescape(it.groupValues[1]) }
        val decision = if (allow) "allow" else "deny"
        val form = listOf("tx" to tx, "decision" to decision, "acknowledged" to "yes") + scopes.map { "scope" to it }
        val consent = post("/portal/consent", form)
        check(consent.statusCode() == 303) { "consent answered ${consent.statusCode()}" }
        consent.headers().firstValue("location").orElseThrow()
    }

    private fun input(page: String, name: String): String? =
        Regex("name=\"$name\"[^>]*?value=\"([^\"]*)\"").find(page)?.let { unescape(it.groupValues[1]) }

    private fun unescape(s: String) = s.replace("&quot;", "\"").replace("&#39;", "'")
        .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/** Hands each `authorize` to the next browser in line (one per patient linked). */
class BrowserQueue(vararg browsers: AuthBrowser) : AuthBrowser {
    private val queue = ConcurrentLinkedQueue(browsers.toList())
    override suspend fun authorize(url: String, redirectUri: String): String =
        (queue.poll() ?: throw BrowserException.Failed("no browser left")).authorize(url, redirectUri)
}

/** A clock the test moves. */
class ManualClock : HostClock {
    private val wall = AtomicLong(System.currentTimeMillis())
    private val mono = AtomicLong(0)
    fun advanceSeconds(s: Long) {
        wall.addAndGet(s * 1000)
        mono.addAndGet(s * 1000)
    }
    override fun nowUnixMs() = wall.get()
    override fun monotonicMs() = mono.get()
}

/** Collects a client's event Flow in the background. */
class Recorder(scope: CoroutineScope, client: ChartLinkClient) {
    val events = CopyOnWriteArrayList<Event>()
    private val job: Job = scope.launch(Dispatchers.Default) { client.events.collect { events.add(it) } }

    init {
        runBlocking { withTimeout(5_000) { while (client.eventCollectors == 0) delay(5) } }
    }

    suspend fun await(what: String, timeoutMs: Long = 5_000, match: (Event) -> Boolean): Event {
        val deadline = System.nanoTime() + timeoutMs * 1_000_000
        while (System.nanoTime() < deadline) {
            events.firstOrNull(match)?.let { return it }
            delay(20)
        }
        fail("no $what within $timeoutMs ms; saw ${events.map { it::class.simpleName }}")
    }

    suspend fun stop() = job.cancelAndJoin()
}

// ---- the tests ---------------------------------------------------------------------------------------------------

suspend fun linkSyncAndReadLabs() = coroutineScopeTest { scope ->
    val store = MemorySecureStore()
    ChartLinkClient(config(), store, PortalBrowser("daniel", "daniel-demo", "daniel-chen")).use { client ->
        val recorder = Recorder(scope, client)
        val account = client.link(FHIR_BASE)
        assertEquals("daniel-chen", account.patientId)
        assertEquals(AccountStatus.ACTIVE, account.status)
        assertEquals(FHIR_BASE, account.fhirBase.trimEnd('/'))
        assertTrue(store.keys("chartlink/").isNotEmpty(), "tokens and the store key live in the Kotlin SecureStore")

        val report = client.sync(account.id)
        assertEquals(account.id, report.accountId)
        assertTrue(report.updated > 0 && report.perType.any { it.resourceType == "Observation" && it.new > 0 }, "$report")
        assertTrue(report.failures.none { !it.notGranted }, "${report.failures}")
        recorder.await("sync progress") { it is Event.SyncProgress && it.progress.accountId == account.id }
        val finished = recorder.await("sync finished") { it is Event.SyncFinished } as Event.SyncFinished
        assertEquals(report, finished.report)

        assertEquals("Daniel Chen", client.activePatient()?.name)
        val labs = client.labResults()
        assertTrue(labs.isNotEmpty())
        assertTrue(labs.all { it.source != null && it.name.isNotBlank() })
        val a1c = labs.filter { it.code == HBA1C }
        assertTrue(a1c.count { it.numericValue != null && it.unit != null } >= 2, "numeric HbA1c results: $a1c")
        val trend = assertNotNull(client.labTrend(HBA1C))
        assertEquals(HBA1C, trend.code)
        assertTrue(trend.points.size >= 2, "a trend has points")
        assertEquals(trend.points.sortedBy { it.date }, trend.points, "oldest first (FhirDate is Comparable)")
        assertEquals(labs.sortedByDescending { it.date }, labs, "newest first")
        assertNull(client.labTrend("0000-0"))
        val summary = client.summary()
        assertEquals("Daniel Chen", summary.patient?.name)
        assertTrue(summary.latestResults.isNotEmpty() && summary.problems.isNotEmpty())
        client.medications(); client.allergies(); client.immunizations(); client.vitalSigns()
        val documents = client.documents()
        documents.firstOrNull { it.hasContent }?.let { assertNotNull(client.documentContent(it.id)) }
        client.visits(); client.appointments()

        val outcome = client.unlink(account.id)
        assertTrue(outcome.revokedAtProvider)
        assertTrue(client.accounts().isEmpty())
        assertTrue(store.keys("chartlink/account/").isEmpty(), "unlink removed the tokens")
        recorder.stop()
    }
}

suspend fun switchingPatients() = coroutineScopeTest { _ ->
    val browser = BrowserQueue(
        PortalBrowser("maria", "maria-demo", "maria-garcia"),
        PortalBrowser("maria", "maria-demo", "leo-garcia"),
    )
    ChartLinkClient(config(), MemorySecureStore(), browser).use { client ->
        val maria = client.link(FHIR_BASE)
        val leo = client.link(FHIR_BASE)
        client.sync(maria.id)
        client.sync(leo.id)
        val patients = client.patients().associateBy { it.name }
        assertEquals(setOf("Maria Garcia", "Leo Garcia"), patients.keys)
        assertEquals(Relation.MYSELF, patients.getValue("Maria Garcia").relation)
        assertEquals(Relation.CHILD, patients.getValue("Leo Garcia").relation)

        assertEquals("Maria Garcia", client.activePatient()?.name, "the first link is active")
        val mariaLabs = client.labResults().map { it.id }.toSet()
        val switched = client.switchPatient(patients.getValue("Leo Garcia").id)
        assertEquals("Leo Garcia", switched.name)
        assertEquals("Leo Garcia", client.demographics()?.name)
        val leoLabs = client.labResults().map { it.id }.toSet()
        assertTrue((mariaLabs intersect leoLabs).isEmpty(), "switching never mixes records")
        client.switchPatient(maria.id) // an account id works too
        assertEquals("Maria Garcia", client.summary().patient?.name)
    }
}

suspend fun lockAndUnlock() = coroutineScopeTest { scope ->
    val clock = ManualClock()
    val client = ChartLinkClient(
        config(lockTimeoutSeconds = 60, lockWarningSeconds = 30, backgroundGraceSeconds = 30),
        MemorySecureStore(),
        PortalBrowser("daniel", "daniel-demo", "daniel-chen"),
        clock,
    )
    client.use {
        val recorder = Recorder(scope, client)
        val account = client.link(FHIR_BASE)
        client.sync(account.id)
        assertNull(client.locked())

        client.lock()
        assertEquals(LockReason.EXPLICIT, client.locked())
        recorder.await("locked event") { it == Event.Locked(LockReason.EXPLICIT) }
        assertFailsWith<ChartLinkException.Locked> { client.labResults() }
        assertFailsWith<ChartLinkException.Locked> { client.patients() }
        assertFailsWith<ChartLinkException.Locked> { client.sync(account.id) }
        client.unlock()
        recorder.await("unlocked event") { it == Event.Unlocked }
        assertTrue(client.labResults().isNotEmpty(), "readable again")

        // The idle timer ticks on the runtime: a warning arrives while nobody calls the SDK.
        val timer = client.startIdleTimer()
        assertTrue(timer.isActive())
        clock.advanceSeconds(35)
        val warning = recorder.await("lock warning from the timer", 4_000) { it is Event.LockWarning }
        assertTrue((warning as Event.LockWarning).remainingMs in 1..30_000)
        // Cancelled, it ticks no more: past the timeout no Locked event arrives by itself...
        timer.cancel()
        assertFalse(timer.isActive())
        delay(200) // a tick already under way when cancel() returned may finish
        val before = recorder.events.size
        clock.advanceSeconds(60)
        delay(2_500)
        assertTrue(recorder.events.drop(before).none { it is Event.Locked }, "a cancelled timer still ticked")
        // ...until the app asks.
        assertEquals(LockReason.IDLE, client.locked())
        recorder.await("idle lock") { it == Event.Locked(LockReason.IDLE) }
        timer.close()
        client.unlock()

        // The shell's lifecycle: foreground starts the timer, background stops it and starts the grace period.
        client.onForeground()
        assertTrue(client.idleTimerRunning)
        client.onBackground()
        assertFalse(client.idleTimerRunning)
        clock.advanceSeconds(31)
        client.onForeground()
        assertEquals(LockReason.BACKGROUND, client.locked())
        client.onBackground()
        recorder.stop()
    }
}

suspend fun typedErrors() = coroutineScopeTest { _ ->
    assertFailsWith<ChartLinkException.InvalidInput> {
        ChartLinkClient(config().copy(clientId = ""), MemorySecureStore())
    }
    assertFailsWith<ChartLinkException.InvalidInput> {
        ChartLinkClient(config(lockTimeoutSeconds = 0), MemorySecureStore())
    }
    ChartLinkClient(config(), MemorySecureStore()).use { client ->
        assertFailsWith<ChartLinkException.InvalidInput>("no AuthBrowser") { client.link(FHIR_BASE) }
    }
    val failing = object : AuthBrowser {
        override suspend fun authorize(url: String, redirectUri: String): String = throw BrowserException.Cancelled()
    }
    ChartLinkClient(config(), MemorySecureStore(), failing).use { client ->
        // Plain http is for this computer only: a bad FHIR base is the app's mistake.
        val bad = assertFailsWith<ChartLinkException.InvalidInput> { client.link("http://fhir.example.org/R4") }
        assertTrue(bad.message!!.isNotBlank())
        assertFailsWith<ChartLinkException.InvalidInput> { client.link("not a url") }
        // Nothing listens on port 9: the cause crosses as data (how it failed, and no Retry-After).
        val down = assertFailsWith<ChartLinkException.Network> { client.link("http://127.0.0.1:9/fhir") }
        assertEquals(NetworkKind.UNREACHABLE, down.kind)
        assertEquals(null, down.retryAfterSeconds)
        assertTrue(down.userMessage.startsWith("The provider could not be reached"), down.userMessage)
        assertFailsWith<ChartLinkException.Cancelled>("the user closed the browser") { client.link(FHIR_BASE) }
        assertFailsWith<ChartLinkException.InvalidInput> { client.switchPatient("nobody") }
        assertFailsWith<ChartLinkException.InvalidInput> { client.sync("no-such-account") }
        assertFailsWith<ChartLinkException.InvalidInput>("no patient is active") { client.labResults() }
    }
    // The patient presses Deny at the portal (the real page, so the redirect carries the server's `iss`).
    val denied = PortalBrowser("daniel", "daniel-demo", "daniel-chen", allow = false)
    ChartLinkClient(config(), MemorySecureStore(), denied).use { client ->
        // The cause crosses as data: "the patient pressed Deny" is not "the provider refused".
        val e = assertFailsWith<ChartLinkException.Authorization> { client.link(FHIR_BASE) }
        assertEquals(AuthorizationReason.DENIED, e.reason)
        assertTrue(e.userMessage.startsWith("You chose not to share"), e.userMessage)
    }
}

suspend fun kotlinSecureStoreAndListener() = coroutineScopeTest { _ ->
    // Failures of the Kotlin store are typed: a thrown SecureStoreException and an unexpected RuntimeException both
    // arrive as ChartLinkException.Storage, and nothing crashes.
    val refusing = object : SecureStore by MemorySecureStore() {
        override fun get(key: String): ByteArray? = throw SecureStoreException.Failed("the user dismissed the prompt")
    }
    val e = assertFailsWith<ChartLinkException.Storage> { ChartLinkClient(config(), refusing) }
    assertEquals(StorageKind.SECURE_STORE, e.kind)
    assertTrue(e.detail.contains("dismissed"), e.detail)
    val broken = object : SecureStore by MemorySecureStore() {
        override fun get(key: String): ByteArray? = throw IllegalStateException("bug in the app")
    }
    assertEquals(StorageKind.SECURE_STORE, assertFailsWith<ChartLinkException.Storage> { ChartLinkClient(config(), broken) }.kind)

    // The store key is created once and read back by a second instance (an app restart).
    val store = MemorySecureStore()
    ChartLinkClient(config(), store).close()
    val key = assertNotNull(store.get("chartlink/store-key"))
    assertEquals(32, key.size)
    ChartLinkClient(config(), store).close()
    assertTrue(key.contentEquals(store.get("chartlink/store-key")))

    // A listener that throws loses its event; the SDK carries on. Its warning reaches the Kotlin logger.
    val lines = CopyOnWriteArrayList<String>()
    setLogger(object : ChartLinkLogger {
        override fun log(level: LogLevel, target: String, message: String) {
            lines.add("$level $target $message")
        }
    }, LogLevel.WARN)
    val throwing = object : EventListener {
        override fun onEvent(event: Event) = throw IllegalStateException("listener bug")
    }
    ChartLink(config(), MemorySecureStore(), listener = throwing).use { sdk ->
        sdk.lock()
        assertEquals(LockReason.EXPLICIT, sdk.locked())
        sdk.unlock()
        assertNull(sdk.locked())
    }
    assertTrue(lines.any { it.startsWith("WARN chartlink") && it.contains("listener") }, "$lines")
}

suspend fun cancellation() = coroutineScopeTest { scope ->
    // Cancelling the coroutine of a suspend call cancels the Rust work, which cancels the Kotlin browser it awaits.
    val opened = CompletableDeferred<Unit>()
    val browserCancelled = AtomicBoolean(false)
    val hanging = object : AuthBrowser {
        override suspend fun authorize(url: String, redirectUri: String): String {
            opened.complete(Unit)
            try {
                awaitCancellation()
            } finally {
                browserCancelled.set(true)
            }
        }
    }
    ChartLinkClient(config(), MemorySecureStore(), hanging).use { client ->
        val job = scope.launch(Dispatchers.Default) { client.link(FHIR_BASE) }
        withTimeout(10_000) { opened.await() }
        withTimeout(5_000) { job.cancelAndJoin() }
        assertTrue(job.isCancelled)
        withTimeout(5_000) { while (!browserCancelled.get()) delay(10) }
        client.cancelLink()
    }
    // A cancelled idle timer reports so; closing the handle (drop) cancels too.
    ChartLinkClient(config(), MemorySecureStore()).use { client ->
        val timer = client.startIdleTimer()
        timer.close()
        val other = client.startIdleTimer()
        other.cancel()
        other.cancel()
        assertFalse(other.isActive())
        other.close()
    }
}

/** Records the thread of every call the SDK makes into the host clock (each read evaluates the idle lock with it). */
class ThreadRecordingClock : HostClock {
    val threads = ConcurrentLinkedQueue<Thread>()
    override fun nowUnixMs(): Long {
        threads.add(Thread.currentThread())
        return System.currentTimeMillis()
    }
    override fun monotonicMs(): Long {
        threads.add(Thread.currentThread())
        return System.nanoTime() / 1_000_000
    }
}

/** Cancels [token] (or runs [onProgress]) at the first progress of a sync that has queries left; counts the rest. */
class CancelMidSync(private val onProgress: () -> Unit) : EventListener {
    val progress = AtomicLong()
    /** A progress event with every query done: the sync was not stopped midway. */
    val sawLastQuery = AtomicBoolean(false)
    private val fired = AtomicBoolean(false)
    override fun onEvent(event: Event) {
        if (event !is Event.SyncProgress) return
        progress.incrementAndGet()
        val p = event.progress
        if (p.queriesDone == p.queriesTotal) sawLastQuery.set(true)
        if (p.queriesDone >= 1 && p.queriesDone < p.queriesTotal && fired.compareAndSet(false, true)) onProgress()
    }
}

suspend fun cancelTokenStopsSyncMidway() = coroutineScopeTest { scope ->
    // The Swift shell's path, on the JVM: a CancelToken cancelled from another thread while the sync runs. The
    // call throws Cancelled, the Rust sync stops (no progress after it), the store holds whole pages only (reads
    // work, no damaged rows), a cancelled token never starts a call, and the next sync completes the record.
    val token = CancelToken()
    val listener = CancelMidSync { Thread { token.cancel() }.start() }
    val dir = kotlin.io.path.createTempDirectory("chartlink-cancel").toFile()
    try {
        ChartLink(config().copy(dataDir = dir.path), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen"), listener, null).use { sdk ->
            val account = sdk.link(FHIR_BASE)
            assertFailsWith<ChartLinkException.Cancelled>("cancelled mid-sync") { sdk.sync(account.id, token) }
            assertTrue(token.isCancelled())
            val atCancel = listener.progress.get()
            delay(700)
            assertEquals(atCancel, listener.progress.get(), "the Rust sync went on after the call was cancelled")
            assertFalse(listener.sawLastQuery.get(), "the cancelled sync still finished its last query")
            val partial = sdk.labResults().map { it.id }.toSet()
            assertTrue(sdk.takeStoreNotices().isEmpty(), "a cancelled sync left damaged rows")
            assertFailsWith<ChartLinkException.Cancelled>("a cancelled token cancels before starting") {
                sdk.sync(account.id, token)
            }
            assertEquals(atCancel, listener.progress.get(), "a call with a cancelled token started")

            // Kotlin's own path: cancelling the coroutine mid-sync drops the Rust future the same way.
            val resumedLabs = sdk.sync(account.id).let { sdk.labResults().map { it.id } }
            assertEquals(resumedLabs.size, resumedLabs.toSet().size, "no record twice")
            assertTrue(resumedLabs.toSet().containsAll(partial), "the resumed sync kept what the cancelled one wrote")

            var job: Job? = null
            val viaCoroutine = CancelMidSync { job?.cancel() }
            ChartLink(config(), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen"), viaCoroutine, null).use { other ->
                val again = other.link(FHIR_BASE)
                job = scope.launch(Dispatchers.Default) { other.sync(again.id) }
                withTimeout(30_000) { job!!.join() }
                assertTrue(job!!.isCancelled, "the coroutine was cancelled mid-sync")
                // The coroutine ends at once; the Rust task is aborted at its next await point, so a step already
                // running on the SDK's thread may still finish (the token path above waits for that).
                delay(300)
                val stoppedAt = viaCoroutine.progress.get()
                delay(700)
                assertEquals(stoppedAt, viaCoroutine.progress.get(), "the Rust sync outlived its coroutine")
                assertFalse(viaCoroutine.sawLastQuery.get(), "the cancelled sync still finished its last query")
                other.sync(again.id)
                assertEquals(resumedLabs.toSet(), other.labResults().map { it.id }.toSet(), "both resumed syncs hold the whole record")
            }
        }
    } finally {
        dir.deleteRecursively()
    }
}

suspend fun readsRunOffTheCallersThread() = coroutineScopeTest { _ ->
    // Every read evaluates the idle lock with the host clock inside the same Rust call that opens SQLite and
    // decrypts, so the clock sees the thread the read runs on. Called from a single "main" thread, no read may run
    // there; a synchronous call (locked()) does, which shows the observation is real.
    val clock = ThreadRecordingClock()
    val main = java.util.concurrent.Executors.newSingleThreadExecutor { r -> Thread(r, "app-main") }
    try {
        ChartLinkClient(config(), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen"), clock).use { c ->
            val account = c.link(FHIR_BASE)
            c.sync(account.id)
            withContext(main.asCoroutineDispatcher()) {
                val caller = Thread.currentThread()
                clock.threads.clear()
                assertTrue(c.labResults().isNotEmpty())
                c.summary(); c.patients(); c.activePatient(); c.vitalSigns(); c.labTrend(HBA1C); c.demographics()
                c.switchPatient(account.id)
                val seen = clock.threads.toList()
                assertTrue(seen.isNotEmpty(), "the reads did not consult the clock")
                assertTrue(seen.none { it === caller }, "a read ran on the caller's thread: ${seen.map { it.name }.toSet()}")
                clock.threads.clear()
                c.locked()
                assertTrue(clock.threads.isNotEmpty() && clock.threads.all { it === caller }, "a synchronous call runs on the caller's thread")
            }
        }
    } finally {
        main.shutdown()
    }
}

suspend fun pagedReads() = coroutineScopeTest { _ ->
    // Lists in pages and date ranges: each page starts after the last record of the one before, and the pages are
    // the list; a range keeps its dates; bad queries are typed errors.
    ChartLinkClient(config(), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen")).use { c ->
        c.sync(c.link(FHIR_BASE).id)
        val all = c.labResults()
        assertTrue(all.size > 10, "a real record: ${all.size}")
        // One Observation record, tagged by its kind: each list holds its kinds.
        assertTrue(all.all { it.kind == ObservationKind.LAB })
        val vitals = c.vitalSigns()
        assertTrue(vitals.isNotEmpty() && vitals.all { it.kind == ObservationKind.VITAL_SIGN })
        assertTrue(c.observations().none { it.kind == ObservationKind.LAB || it.kind == ObservationKind.VITAL_SIGN })
        assertTrue(all.any { it.reportId != null }, "lab results name their report")
        // Every page, each after the last record of the one before: the list, once, in its order.
        val paged = mutableListOf<Observation>()
        var query = RecordQuery(limit = 7)
        while (true) {
            val page = c.labResults(query)
            assertTrue(page.size <= 7)
            paged += page
            if (page.size < 7) break
            query = query.copy(after = page.last().id)
        }
        assertEquals(all, paged, "the pages are the list")

        val year = all[all.size / 2].date!!.year
        val ranged = c.labResults(RecordQuery(from = "$year", to = "$year"))
        assertEquals(all.filter { it.date?.year == year }, ranged)
        assertTrue(c.vitalSigns(RecordQuery(from = "${year + 1}-01-01")).all { it.date!!.year > year })

        assertFailsWith<ChartLinkException.InvalidInput> { c.labResults(RecordQuery(limit = 0)) }
        assertFailsWith<ChartLinkException.InvalidInput> { c.labResults(RecordQuery(from = "last week")) }
        assertFailsWith<ChartLinkException.InvalidInput>("a lab's id as the start of the vital signs") {
            c.vitalSigns(RecordQuery(after = all.first().id))
        }
    }
}

suspend fun typedDatesAndImmutableRecords() = coroutineScopeTest { _ ->
    // FHIR's partial dates cross as FhirDate: the precision is kept ("2019-05" stays a month), and the order is
    // Rust's (Kotlin Comparable): by the earliest instant covered, a coarser date first when two start together.
    fun d(text: String, precision: DatePrecision, month: Int?, day: Int?, epoch: Long, time: Int? = null, offset: Int? = null) =
        FhirDate(text, precision, 2019, month, day, time, offset, epoch)
    val year = d("2019", DatePrecision.YEAR, null, null, 1546300800)
    val jan1 = d("2019-01-01", DatePrecision.DAY, 1, 1, 1546300800)
    val may = d("2019-05", DatePrecision.MONTH, 5, null, 1556668800)
    val mayThird = d("2019-05-03T10:15:00+02:00", DatePrecision.DATE_TIME, 5, 3, 1556871300, 36900, 120)
    assertEquals(listOf(year, jan1, may, mayThird), listOf(mayThird, may, jan1, year).sorted())
    assertTrue(year < jan1 && may > jan1 && mayThird > may)
    assertEquals(0, may.compareTo(may.copy()))

    ChartLinkClient(config(), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen")).use { c ->
        c.sync(c.link(FHIR_BASE).id)
        val dates = c.labResults().mapNotNull { it.date } + c.problems().mapNotNull { it.onset } + c.immunizations().mapNotNull { it.date }
        assertTrue(dates.isNotEmpty())
        for (date in dates) {
            // The text is FHIR's, at the precision it says.
            val expected = when (date.precision) {
                DatePrecision.YEAR -> 4
                DatePrecision.MONTH -> 7
                DatePrecision.DAY -> 10
                DatePrecision.DATE_TIME -> 19
            }
            assertTrue(date.text.length >= expected && (date.precision == DatePrecision.DATE_TIME || date.text.length == expected), "$date")
            assertEquals(date.year, date.text.take(4).toInt())
        }
        c.demographics()?.birthDate?.let { assertEquals(DatePrecision.DAY, it.precision) }
    }
    // Records are values: no setters (generate_immutable_records).
    for (record in listOf(Observation::class.java, PatientContext::class.java, FhirDate::class.java, Provider::class.java)) {
        assertTrue(record.methods.none { it.name.startsWith("set") }, "${record.simpleName} has setters")
    }
}

suspend fun providerDirectory() = coroutineScopeTest { _ ->
    // The sandbox's SMART brands bundle: search with a typo and an accent-free alias, mark the dead endpoint, and
    // find the marks and the bundle stored in the cache directory on the next load.
    val cache = kotlin.io.path.createTempDirectory("chartlink-directory").toFile()
    try {
        val directory = loadProviderDirectory(listOf("$SANDBOX/brands.json"), cache.path)
        assertTrue(directory.providers().size >= 3, "${directory.providers().map { it.name }}")
        assertEquals("ChartLink Sandbox Health", directory.search("chartlnk sandbox", 5).firstOrNull()?.name, "a typo")
        assertEquals("Offline Regional Medical Center", directory.search("ORMC", 5).firstOrNull()?.name, "an alias")
        assertTrue(directory.search("springfield", 5).any { it.name == "ChartLink Sandbox Health" }, "a city")
        assertTrue(directory.search("zzzz qqqq", 5).isEmpty())
        assertTrue(directory.providers().flatMap { it.endpoints }.all { it.status == EndpointStatus.UNKNOWN })

        val failed = withTimeout(60_000) { directory.checkEndpoints() }
        assertEquals(1L, failed, "the offline provider's endpoint is dead")
        val byName = directory.providers().associateBy { it.name }
        assertEquals(EndpointStatus.DISCOVERY_FAILED, byName.getValue("Offline Regional Medical Center").endpoints.single().status)
        val working = byName.getValue("ChartLink Sandbox Health").endpoints.single()
        assertEquals(EndpointStatus.WORKING, working.status)
        assertEquals(FHIR_BASE, working.fhirBase.trimEnd('/'), "pass it to link()")

        // Stored: the next load has the marks without checking again.
        val again = loadProviderDirectory(listOf("$SANDBOX/brands.json"), cache.path)
        assertEquals(
            EndpointStatus.DISCOVERY_FAILED,
            again.search("offline regional", 1).single().endpoints.single().status,
        )
        assertTrue(cache.listFiles()!!.size >= 2, "the bundle and the marks are stored: ${cache.list()!!.toList()}")
        assertFailsWith<ChartLinkException.InvalidInput> { ProviderDirectory.fromBundle("{}".toByteArray()) }
        assertFailsWith<ChartLinkException.Network> { loadProviderDirectory(listOf("http://127.0.0.1:9/brands.json")) }
    } finally {
        cache.deleteRecursively()
    }
}

suspend fun panicsArriveAsExceptions() = coroutineScopeTest { _ ->
    val sync = assertFailsWith<ChartLinkException.Internal> { debugPanicForTest() }
    assertFalse(sync.message!!.contains("deliberate"), "the panic text stays in Rust")
    assertFailsWith<ChartLinkException.Internal> { debugPanicAsyncForTest() }
    // The library is still fine afterwards.
    ChartLinkClient(config(), MemorySecureStore()).use { assertNull(it.locked()) }
}

suspend fun pendingLinkSurvivesProcessDeath() = coroutineScopeTest { _ ->
    // The process is killed while the user is at the portal (Android does that to a backgrounded app); the redirect
    // restarts it, and a fresh client over the same secure store and files completes the login the first one began.
    val store = MemorySecureStore()
    val dir = kotlin.io.path.createTempDirectory("chartlink-process").toFile()
    try {
        val cfg = config().copy(dataDir = dir.path)
        val request = ChartLinkClient(cfg, store).use { first -> first.beginLink(FHIR_BASE) }
        assertTrue(store.keys("chartlink/pending/").isNotEmpty(), "the pending authorization is in the secure store")
        val redirect = PortalBrowser("daniel", "daniel-demo", "daniel-chen").authorize(request.url, request.redirectUri)
        ChartLinkClient(cfg, store).use { fresh ->
            val account = fresh.completeLink(redirect)
            assertEquals(listOf(account.id), fresh.accounts().map { it.id })
            fresh.sync(account.id)
            assertTrue(fresh.labResults().isNotEmpty())
            assertTrue(store.keys("chartlink/pending/").isEmpty(), "spent")
        }
        // A replayed redirect in yet another process is refused, typed.
        ChartLinkClient(cfg, store).use { again ->
            assertFailsWith<ChartLinkException> { again.completeLink(redirect) }
        }
    } finally {
        dir.deleteRecursively()
    }
}

suspend fun startedLocked() = coroutineScopeTest { _ ->
    // Built locked, the client reads no store key (no biometric prompt while the app starts); reads answer Locked
    // until unlockAsync() reads it off the caller's thread.
    val store = MemorySecureStore()
    val dir = kotlin.io.path.createTempDirectory("chartlink-locked").toFile()
    try {
        val cfg = config().copy(dataDir = dir.path)
        val accountId = ChartLinkClient(cfg, store, PortalBrowser("daniel", "daniel-demo", "daniel-chen")).use { c ->
            val account = c.link(FHIR_BASE)
            c.sync(account.id)
            account.id
        }
        ChartLinkClient(cfg, store, startLocked = true).use { sdk ->
            assertNotNull(sdk.locked())
            assertNotNull(sdk.lockState.value)
            assertFailsWith<ChartLinkException.Locked> { sdk.labResults() }
            sdk.unlockAsync()
            assertNull(sdk.locked())
            assertNull(sdk.lockState.value)
            sdk.switchPatient(accountId)
            assertTrue(sdk.labResults().isNotEmpty())
        }
        // Another key under the store key's name (a restored phone, a re-enrolled biometric): the storage error
        // says which, as data, and nothing is deleted.
        val right = assertNotNull(store.get("chartlink/store-key"))
        store.put("chartlink/store-key", ByteArray(32) { 7 })
        val wrong = assertFailsWith<ChartLinkException.Storage> { ChartLinkClient(cfg, store) }
        assertEquals(StorageKind.WRONG_KEY, wrong.kind)
        assertTrue(wrong.userMessage.contains("can no longer be opened"), wrong.userMessage)
        store.put("chartlink/store-key", right)
        ChartLinkClient(cfg, store).use { sdk ->
            sdk.switchPatient(accountId)
            assertTrue(sdk.labResults().isNotEmpty(), "the record is intact")
        }
    } finally {
        dir.deleteRecursively()
    }
}

suspend fun observableState() = coroutineScopeTest { _ ->
    // The lock state and the active patient are state with a current value, not only one-off events.
    ChartLinkClient(config(), MemorySecureStore(), PortalBrowser("maria", "maria-demo", "maria-garcia")).use { c ->
        assertNull(c.lockState.value)
        assertNull(c.activePatientState.value, "nobody linked yet")
        val own = c.link(FHIR_BASE)
        assertNotNull(c.activePatientState.value, "the first link becomes the active patient")
        c.sync(own.id)
        assertEquals("Maria Garcia", c.activePatientState.value?.name, "the sync brought her name")
        c.lock()
        assertEquals(LockReason.EXPLICIT, c.lockState.value)
        assertNull(c.activePatientState.value, "whose record it is is not shown while locked")
        c.unlock()
        assertNull(c.lockState.value)
        // The patient is read off the event thread after Unlocked (a store read): state, so wait for it.
        assertEquals("Maria Garcia", withTimeout(5_000) { c.activePatientState.first { it != null } }?.name)
        c.unlink(own.id)
        assertNull(c.activePatientState.value)
    }
}

suspend fun slowLoginIsNotBackground() = coroutineScopeTest { _ ->
    // The Custom Tab covers the app, which the lifecycle reports as background; a login slower than the grace
    // period must neither lock the SDK nor waste the authorization code.
    val clock = ManualClock()
    val portal = PortalBrowser("daniel", "daniel-demo", "daniel-chen")
    var client: ChartLinkClient? = null
    var backAfterLogin = true
    val slow = object : AuthBrowser {
        override suspend fun authorize(url: String, redirectUri: String): String {
            val c = client!!
            c.onBackground()
            assertTrue(c.backgroundHeldByLink)
            clock.advanceSeconds(120) // grace is 30 s
            val redirect = portal.authorize(url, redirectUri)
            if (backAfterLogin) c.onForeground() // the redirect brings the app back
            return redirect
        }
    }
    ChartLinkClient(config(backgroundGraceSeconds = 30), MemorySecureStore(), slow, clock).use { c ->
        client = c
        c.onForeground()
        val account = c.link(FHIR_BASE)
        assertNull(c.locked(), "a link in progress is not background")
        c.sync(account.id)
        // A real absence after the link still locks.
        c.onBackground()
        clock.advanceSeconds(60)
        c.onForeground()
        assertEquals(LockReason.BACKGROUND, c.locked())
        c.unlock()
        // The link ends while the app is still away: the background is reported then, and counts from then.
        backAfterLogin = false
        c.link(FHIR_BASE)
        assertNull(c.locked())
        assertFalse(c.backgroundHeldByLink)
        clock.advanceSeconds(60)
        c.onForeground()
        assertEquals(LockReason.BACKGROUND, c.locked())
    }
}

suspend fun noBrowserAndCloseActions() = coroutineScopeTest { _ ->
    val store = MemorySecureStore()
    val none = object : AuthBrowser, BrowserAvailability {
        override fun isAvailable() = false
        override suspend fun authorize(url: String, redirectUri: String): String = fail("must not open")
    }
    var closed = 0
    ChartLinkClient(config(), store, none).use { client ->
        client.doOnClose { closed++ }
        assertFailsWith<NoBrowserException> { client.link(FHIR_BASE) }
        assertTrue(store.keys("chartlink/pending/").isEmpty(), "nothing was started")
    }
    assertEquals(1, closed, "close() runs the close actions (the Android observer uninstalls itself so)")
}

// ---- a small runner ------------------------------------------------------------------------------------------------

suspend fun coroutineScopeTest(body: suspend (CoroutineScope) -> Unit) {
    kotlinx.coroutines.coroutineScope { body(this) }
}

suspend fun familyHistory() = coroutineScopeTest { _ ->
    // A record kind added as one line of core's lists table: the provider files a relative's history, a sync
    // brings it, and the generated read shows it (whole, and in a date range).
    admin("PUT", "/resources/FamilyMemberHistory/kotlin-fmh", """
        {"resourceType": "FamilyMemberHistory", "id": "kotlin-fmh", "status": "completed", "date": "2026-09-01",
         "patient": {"reference": "Patient/daniel-chen"}, "relationship": {"text": "Maternal grandmother"},
         "deceasedBoolean": true,
         "condition": [{"code": {"text": "Kotlin heron cardiomyopathy"}, "onsetAge": {"value": 61, "unit": "a"},
                        "contributedToDeath": true}]}
    """)
    try {
        ChartLinkClient(config(), MemorySecureStore(), PortalBrowser("daniel", "daniel-demo", "daniel-chen")).use { c ->
            c.sync(c.link(FHIR_BASE).id)
            val history = c.familyHistory().single { it.id == "kotlin-fmh" }
            assertEquals("Maternal grandmother", history.relationship)
            assertEquals("yes", history.deceased)
            val condition = history.conditions.single()
            assertEquals("Kotlin heron cardiomyopathy", condition.name)
            assertEquals("at 61 years", condition.onset)
            assertTrue(condition.contributedToDeath)
            assertEquals(2026, history.date?.year)
            assertTrue(c.familyHistory(RecordQuery(to = "2025")).none { it.id == "kotlin-fmh" })
            // By id, typed: what a "what's new" row opens.
            val opened = c.record("FamilyMemberHistory", "kotlin-fmh")
            assertEquals(ChartRecord.FamilyHistory(history), opened)
            val lab = c.labResults().first()
            assertEquals(ChartRecord.Observation(lab), c.record("Observation", lab.id))
            assertEquals(null, c.record("FamilyMemberHistory", "kotlin-nobody"))
            assertFailsWith<ChartLinkException.InvalidInput> { c.record("Binary", "x") }
        }
    } finally {
        admin("DELETE", "/resources/FamilyMemberHistory/kotlin-fmh", "")
    }
}

fun main() {
    val tests: List<Pair<String, suspend () -> Unit>> = listOf(
        "link, sync with the event Flow, read labs and the HbA1c trend, unlink" to ::linkSyncAndReadLabs,
        "switch between a parent's own record and a child's" to ::switchingPatients,
        "lock and unlock, the idle timer and its cancellation, background" to ::lockAndUnlock,
        "typed errors arrive as ChartLinkException subclasses" to ::typedErrors,
        "a Kotlin SecureStore, listener and logger" to ::kotlinSecureStoreAndListener,
        "cancelling a coroutine cancels the Rust call and the Kotlin browser" to ::cancellation,
        "a Rust panic arrives as ChartLinkException.Internal" to ::panicsArriveAsExceptions,
        "a pending link survives process death: a fresh client completes the redirect" to ::pendingLinkSurvivesProcessDeath,
        "a login slower than the background grace neither locks nor wastes the code" to ::slowLoginIsNotBackground,
        "no browser is a typed error before anything starts; close() runs the close actions" to ::noBrowserAndCloseActions,
        "started locked, the store key is read only by unlockAsync()" to ::startedLocked,
        "the lock state and the active patient are observable state" to ::observableState,
        "a CancelToken (the Swift path) and a cancelled coroutine stop a sync midway, nothing half-written" to ::cancelTokenStopsSyncMidway,
        "reads are suspend and never run on the caller's thread" to ::readsRunOffTheCallersThread,
        "dates are typed FhirDates, sortable, at their precision; records are immutable" to ::typedDatesAndImmutableRecords,
        "the provider directory: search, dead-endpoint marks, stored" to ::providerDirectory,
        // Before the tests that move the sandbox's clock an hour ahead.
        "lists in pages and date ranges: the pages are the list, bad queries typed" to ::pagedReads,
        "a record kind from one table line: family history filed, synced and read" to ::familyHistory,
        "a locked background sync from Kotlin: counts-only event, readable after unlock" to ::lockedBackgroundSync,
        "live reads: a Flow that emits again after a sync, a switch and an unlock" to ::liveReads,
    )
    val only = System.getProperty("chartlink.only")
    val started = System.nanoTime()
    var failed = 0
    var ran = 0
    for ((name, test) in tests) {
        if (only != null && !name.contains(only)) continue
        ran++
        val t0 = System.nanoTime()
        try {
            runBlocking { withTimeout(120_000) { test() } }
            println("ok      ${ms(t0)}  $name")
        } catch (e: Throwable) {
            failed++
            println("FAILED  ${ms(t0)}  $name")
            e.printStackTrace(System.out)
        }
    }
    println("kotlin host tests: ${ran - failed} passed, $failed failed in ${ms(started)}")
    // Native threads may hold the JVM open; the verdict is in.
    exitProcess(if (failed == 0 && ran > 0) 0 else 1)
}

fun ms(since: Long) = "%6d ms".format((System.nanoTime() - since) / 1_000_000)
