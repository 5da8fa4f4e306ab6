package dev.chartlink.sdk.android

import android.app.Activity
import android.app.Application
import android.os.Bundle
import android.os.SystemClock
import android.view.KeyEvent
import android.view.MotionEvent
import android.view.Window
import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.ProcessLifecycleOwner
import dev.chartlink.sdk.ChartLinkClient

/**
 * Feeds the app's lifecycle to ChartLink's idle lock: the process coming to the foreground (ON_START) and going to
 * the background (ON_STOP), and every touch or key press as user activity (at most once a second).
 *
 * ```kotlin
 * class App : Application() {
 *     override fun onCreate() {
 *         super.onCreate()
 *         ChartLinkLifecycleObserver(client).install(this)
 *     }
 * }
 * ```
 */
class ChartLinkLifecycleObserver(private val client: ChartLinkClient) :
    DefaultLifecycleObserver, Application.ActivityLifecycleCallbacks {

    @Volatile
    private var lastActivity = 0L

    fun install(application: Application) {
        ProcessLifecycleOwner.get().lifecycle.addObserver(this)
        application.registerActivityLifecycleCallbacks(this)
    }

    override fun onStart(owner: LifecycleOwner) = client.onForeground()

    override fun onStop(owner: LifecycleOwner) = client.onBackground()

    private fun userActed() {
        val now = SystemClock.elapsedRealtime()
        if (now - lastActivity >= 1_000) {
            lastActivity = now
            client.recordActivity()
        }
    }

    override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) {
        val window = activity.window ?: return
        val original = window.callback ?: return
        if (original !is ActivityTracking) window.callback = ActivityTracking(original)
    }

    /** Passes every window event on, noting touches and keys as activity. */
    private inner class ActivityTracking(private val original: Window.Callback) : Window.Callback by original {
        override fun dispatchTouchEvent(event: MotionEvent?): Boolean {
            userActed()
            return original.dispatchTouchEvent(event)
        }

        override fun dispatchKeyEvent(event: KeyEvent?): Boolean {
            userActed()
            return original.dispatchKeyEvent(event)
        }
    }

    override fun onActivityStarted(activity: Activity) {}
    override fun onActivityResumed(activity: Activity) {}
    override fun onActivityPaused(activity: Activity) {}
    override fun onActivityStopped(activity: Activity) {}
    override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
    override fun onActivityDestroyed(activity: Activity) {}
}
