package dev.chartlink.sdk.android

/**
 * Process-wide foreground and background from activity starts and stops, as AndroidX's ProcessLifecycleOwner
 * computes it: foreground when the first activity starts, background when the last started one stops. A stop for a
 * configuration change (rotation) is not background: the recreated activity starts right after.
 *
 * Activities are told apart by identity, so an activity that was already started before the counter existed (the
 * app installed ChartLink from a visible activity) is handled with [assumeForeground]: its stop then ends the
 * foreground like any other.
 */
class StartedActivityCounter(
    private val onForeground: () -> Unit,
    private val onBackground: () -> Unit,
) {
    private val started = HashSet<Int>()
    private var foreground = false

    /** Whether the process is in the foreground as far as the counter knows. */
    val isForeground: Boolean @Synchronized get() = foreground

    /** How many started activities it knows of. */
    val startedActivities: Int @Synchronized get() = started.size

    @Synchronized
    fun activityStarted(activity: Any) {
        started.add(System.identityHashCode(activity))
        if (!foreground) {
            foreground = true
            onForeground()
        }
    }

    @Synchronized
    fun activityStopped(activity: Any, changingConfigurations: Boolean) {
        started.remove(System.identityHashCode(activity))
        if (started.isEmpty() && foreground && !changingConfigurations) {
            foreground = false
            onBackground()
        }
    }

    /** The process is visible now although no start was seen (installed late): report the foreground once. */
    @Synchronized
    fun assumeForeground() {
        if (!foreground) {
            foreground = true
            onForeground()
        }
    }
}

/** Lets through at most one report of user activity per [intervalMs] (touches come many times a second). */
class ActivityThrottle(private val intervalMs: Long = 1_000) {
    private var last = Long.MIN_VALUE

    /** Whether activity at [nowMs] (a monotonic clock) should be reported. */
    @Synchronized
    fun shouldReport(nowMs: Long): Boolean {
        if (last != Long.MIN_VALUE && nowMs - last < intervalMs) return false
        last = nowMs
        return true
    }
}
