package dev.chartlink.sdk.android

import android.app.job.JobInfo
import android.app.job.JobParameters
import android.app.job.JobScheduler
import android.app.job.JobService
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.os.BatteryManager
import android.os.Build
import dev.chartlink.sdk.BackgroundReport
import dev.chartlink.sdk.ChartLinkClient
import dev.chartlink.sdk.ChartLinkException
import dev.chartlink.sdk.StorageKind
import dev.chartlink.sdk.SyncBudget
import java.util.concurrent.ConcurrentHashMap
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.launch

/**
 * Periodic background sync with the framework's JobScheduler (no AndroidX WorkManager). The core decides what to
 * sync (`syncDue`: Active accounts not synced within the interval) and stays within the budget built here from the
 * job's conditions (metered network → no document contents; low battery → nothing).
 *
 * The client may be locked: a locked client syncs with the tokens (the Keystore key without user authentication)
 * and the accounts' public keys only, and nothing becomes readable until the user unlocks (the store key stays
 * behind biometrics). The [BackgroundReport] it hands to [ChartLinkBackgroundSync.onReport] holds counts per account
 * and kind only, safe for a notification ("3 new lab results").
 *
 * Set up once, in `Application.onCreate` (the process the OS starts for the job runs it too):
 *
 * ```kotlin
 * ChartLinkBackgroundSync.clientProvider = { context -> app.chartLinkOrNull ?: ChartLinkAndroid.create(context, config, startLocked = true) }
 * ChartLinkBackgroundSync.onReport = { report -> if (report.total > 0) notify("${report.total} new results") }
 * ChartLinkBackgroundSync.schedule(this, intervalMinutes = 60)
 * ```
 *
 * Registered in the library's manifest (merged into the app's) with `android.permission.BIND_JOB_SERVICE`.
 */
class ChartLinkSyncJobService : JobService() {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val running = ConcurrentHashMap<Int, Job>()

    override fun onStartJob(params: JobParameters): Boolean {
        val provider = ChartLinkBackgroundSync.clientProvider ?: return false
        running[params.jobId] = scope.launch {
            var retry = false
            try {
                val client = provider(applicationContext)
                val report = client.backgroundSync(ChartLinkBackgroundSync.budget(applicationContext))
                ChartLinkBackgroundSync.onReport?.invoke(report)
            } catch (e: ChartLinkException.Storage) {
                // The secure store was not readable yet (before the first unlock after boot), or another process
                // held the database: worth another try. A wrong key or a newer database is not.
                retry = e.kind == StorageKind.SECURE_STORE || e.kind == StorageKind.BUSY
            } catch (e: ChartLinkException.Network) {
                retry = true
            } catch (e: ChartLinkException) {
                // Typed and without health data; the next period tries again.
            } finally {
                running.remove(params.jobId)
                jobFinished(params, retry)
            }
        }
        return true
    }

    /** The system ends the job (its time is up, or the conditions no longer hold): cancel the sync, try again later. */
    override fun onStopJob(params: JobParameters): Boolean {
        running.remove(params.jobId)?.cancel()
        return true
    }
}

/** Scheduling and configuration of [ChartLinkSyncJobService]. */
object ChartLinkBackgroundSync {
    /** The job's id in the app's JobScheduler namespace ("CLS"); change it if the app uses this id already. */
    @Volatile
    var jobId: Int = 0x434C53

    /** Gives the job a client: the app's own when it has one, else `ChartLinkAndroid.create(..., startLocked = true)`. */
    @Volatile
    var clientProvider: ((Context) -> ChartLinkClient)? = null

    /** Receives each background report (counts only). */
    @Volatile
    var onReport: ((BackgroundReport) -> Unit)? = null

    /** How long one job may sync (JobScheduler allows up to 10 minutes). */
    @Volatile
    var maxDurationMs: Long = 5 * 60_000

    /**
     * Schedules the periodic job (at least every [intervalMinutes], 15 at the least; persisted across reboots
     * needs `RECEIVE_BOOT_COMPLETED`, which the library's manifest declares). Returns whether the system took it.
     */
    fun schedule(context: Context, intervalMinutes: Long = 60, unmeteredOnly: Boolean = false): Boolean {
        val minutes = intervalMinutes.coerceAtLeast(15)
        val job = JobInfo.Builder(jobId, ComponentName(context, ChartLinkSyncJobService::class.java))
            .setPeriodic(minutes * 60_000)
            .setRequiredNetworkType(if (unmeteredOnly) JobInfo.NETWORK_TYPE_UNMETERED else JobInfo.NETWORK_TYPE_ANY)
            .setRequiresBatteryNotLow(true)
            .setPersisted(true)
            .build()
        return scheduler(context).schedule(job) == JobScheduler.RESULT_SUCCESS
    }

    /** Stops the periodic job (after the last account was unlinked). */
    fun cancel(context: Context) = scheduler(context).cancel(jobId)

    /** The budget of one run, from the device's state now. */
    fun budget(context: Context): SyncBudget {
        val connectivity = context.getSystemService(ConnectivityManager::class.java)
        val battery = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val low = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            battery?.getBooleanExtra(BatteryManager.EXTRA_BATTERY_LOW, false) ?: false
        } else {
            val level = battery?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1
            val scale = battery?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1
            level in 0..(scale * 15 / 100) && scale > 0
        }
        return SyncBudget(
            maxDurationMs = maxDurationMs,
            maxBytes = 0,
            metered = connectivity?.isActiveNetworkMetered ?: true,
            lowBattery = low,
            minIntervalSeconds = 15 * 60,
        )
    }

    private fun scheduler(context: Context) = context.getSystemService(JobScheduler::class.java)
}
