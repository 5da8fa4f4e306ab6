package dev.chartlink.sample

import android.app.Activity
import android.app.Application
import dev.chartlink.sdk.*
import dev.chartlink.sdk.android.ChartLinkAndroid
import dev.chartlink.sdk.android.ChartLinkLifecycleObserver
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/** Your screens: what the app shows (not part of ChartLink). */
interface RecordScreen {
    fun showProgress(done: Long, total: Long)
    fun showNotice(text: String)
    fun showStillThere(remainingMs: Long)
    fun showLockScreen()
    fun hideLockScreen()
    fun showRelinkNotice(accountId: String)
    fun showRetry(message: String?)
    fun showStartOver(message: String?)
    fun showProviders(providers: List<Provider>)
}

class App : Application() {
    lateinit var chartLink: ChartLinkClient

    private val config = ChartLinkConfig(
        clientId = "chartlink-demo",
        redirectUri = "chartlink-demo://callback",
        appName = "My Health",
        lockTimeoutSeconds = 600, // the portal's mobile timeout
    )

    // Call from the visible activity after the user authenticated (BiometricPrompt or device credential): the
    // store key is bound to it.
    fun startChartLink(activity: Activity, screen: RecordScreen) {
        chartLink = try {
            ChartLinkAndroid.create(this, config)
        } catch (e: ChartLinkException.Storage) {
            if (e.kind != StorageKind.WRONG_KEY) throw e
            // The records can never be opened on this device again (screen lock removed, data from another
            // device). After the user agreed: start over and link again.
            screen.showStartOver(e.userMessage)
            ChartLinkAndroid.reset(this, config)
            ChartLinkAndroid.create(this, config)
        }
        // Foreground/background, touches and keys -> idle lock; uninstalled by chartLink.close().
        ChartLinkLifecycleObserver(chartLink).install(this, activity)
    }
}

/** Your screen's model: a plain class with its own scope (an AndroidX ViewModel works the same way). */
class RecordModel(private val chartLink: ChartLinkClient, private val screen: RecordScreen) {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Main)

    init {
        scope.launch {
            chartLink.events.collect { event ->
                when (event) {
                    is Event.SyncProgress -> screen.showProgress(event.progress.queriesDone, event.progress.queriesTotal)
                    is Event.SyncFinished -> screen.showNotice("${event.report.updated} new or updated items")
                    // Counts only (safe on the lock screen); unlocked, chartLink.whatsNew() lists the records.
                    is Event.BackgroundSyncFinished -> screen.showNotice("${event.report.total} new results")
                    is Event.LockWarning -> screen.showStillThere(event.remainingMs)
                    is Event.Locked -> screen.showLockScreen()
                    is Event.Unlocked -> screen.hideLockScreen()
                    // What background syncs brought while locked is readable now (the client's live reads refresh).
                    is Event.LockedInboxApplied -> {}
                    is Event.AccessRevoked -> screen.showRelinkNotice(event.accountId)
                    is Event.RelinkNeeded -> screen.showRelinkNotice(event.accountId)
                    is Event.LinkLimited -> screen.showNotice(
                        if (event.canRenew) "The provider did not share everything asked for"
                        else "The provider allows access only until the current session ends",
                    )
                }
            }
        }
        // The process was killed while the user was in the browser: finish that login now.
        ChartLinkAndroid.takeOrphanedRedirect()?.let { redirect ->
            scope.launch { runCatching { chartLink.sync(chartLink.completeLink(redirect).id) } }
        }
    }

    // The provider picker: load the directory once (cached with its ETag in the app's cache dir, works offline),
    // then search as the user types. Endpoints whose discovery failed are marked, never offered as working.
    private var directory: ProviderDirectory? = null

    fun loadProviders(cacheDir: String) = scope.launch {
        try {
            directory = loadProviderDirectory(listOf("https://fhir.example.org/brands.json"), cacheDir)
            directory?.checkEndpoints() // optional: marks dead endpoints (stored for the next load)
        } catch (e: ChartLinkException.Network) {
            screen.showRetry(e.userMessage)
        }
    }

    fun onSearchTyped(query: String) {
        screen.showProviders(directory?.search(query, 20).orEmpty())
    }

    fun onProviderPicked(provider: Provider) {
        val endpoint = provider.endpoints.firstOrNull { it.status != EndpointStatus.DISCOVERY_FAILED } ?: return
        linkAndSync(endpoint.fhirBase)
    }

    fun linkAndSync(fhirBase: String) = scope.launch {
        try {
            // Opens the provider's login and consent pages in a Custom Tab; returns when the patient allowed access.
            val account = chartLink.link(fhirBase)
            chartLink.sync(account.id)

            // Reads are suspend: SQLite and decryption run on the SDK's threads, not on Main.
            val labs: List<Observation> = chartLink.labResults() // newest first
            // Dates keep FHIR's precision ("2019-05" stays a month) and sort: FhirDate is Comparable.
            labs.forEach { println("${it.date?.text} ${it.name}: ${it.valueText} (${it.rangeText ?: "no range"}) ${it.flag}") }
            val byDate: List<Observation> = labs.sortedBy { it.date }
            val hba1c: LabTrend? = chartLink.labTrend("4548-4") // for a chart: points oldest first
            val summary: HealthSummary = chartLink.summary()
            println("${hba1c?.points?.size ?: 0} HbA1c results; ${summary.allergies.size} allergies; oldest ${byDate.firstOrNull()?.date?.text}")

            // A parent with a linked child: switch whose record the reads show.
            val child = chartLink.patients().firstOrNull { it.relation == Relation.CHILD }
            if (child != null) chartLink.switchPatient(child.id)
        } catch (e: NoBrowserException) {
            screen.showRetry(e.message) // ask the user to install or enable a browser
        } catch (e: ChartLinkException.Cancelled) {
            // The user closed the browser.
        } catch (e: ChartLinkException.Authorization) {
            // e.reason tells "you chose Deny" (DENIED) from "the provider refused" (REFUSED); userMessage says it.
            screen.showRetry(e.userMessage)
        } catch (e: ChartLinkException.Network) {
            screen.showRetry(e.userMessage)
        } catch (e: ChartLinkException.Locked) {
            screen.showLockScreen()
        }
    }

    fun lockNow() = chartLink.lock() // the store key and tokens leave memory; reads throw Locked

    fun unlock() = chartLink.unlock() // after BiometricPrompt succeeded

    /** Cancelling the scope cancels a link in progress too (its Custom Tab closes). */
    fun clear() = scope.cancel()
}
