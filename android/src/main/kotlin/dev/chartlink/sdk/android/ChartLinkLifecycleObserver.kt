package dev.chartlink.sdk.android

import android.app.Activity
import android.app.ActivityManager
import android.app.Application
import android.os.Bundle
import android.os.SystemClock
import android.view.ActionMode
import android.view.KeyEvent
import android.view.KeyboardShortcutGroup
import android.view.Menu
import android.view.MenuItem
import android.view.MotionEvent
import android.view.SearchEvent
import android.view.View
import android.view.Window
import android.view.WindowManager
import android.view.accessibility.AccessibilityEvent
import dev.chartlink.sdk.ChartLinkClient
import java.util.WeakHashMap

/**
 * Feeds the app's lifecycle to ChartLink's idle lock, without AndroidX: the process coming to the foreground and
 * going to the background (counted from started activities, as ProcessLifecycleOwner does: see
 * [StartedActivityCounter]), and every touch or key press as user activity (at most once a second).
 *
 * Install it once, in `Application.onCreate`, or from the visible activity (pass it: it is counted as started and
 * its touches count from then on). Activities that existed before are tracked from their next start or resume.
 * Closing the client uninstalls it; [close] does so directly.
 *
 * ```kotlin
 * ChartLinkLifecycleObserver(client).install(application, activity)
 * ```
 */
class ChartLinkLifecycleObserver(private val client: ChartLinkClient) :
    Application.ActivityLifecycleCallbacks, AutoCloseable {

    private val counter = StartedActivityCounter(client::onForeground, client::onBackground)
    private val throttle = ActivityThrottle()
    private val tracked = WeakHashMap<Window, TrackingCallback>()
    private var application: Application? = null

    /** Registers for the app's activities; [visibleActivity] is the started activity installing it, if any. */
    fun install(application: Application, visibleActivity: Activity? = null): ChartLinkLifecycleObserver {
        check(this.application == null) { "already installed" }
        this.application = application
        application.registerActivityLifecycleCallbacks(this)
        client.doOnClose(::close)
        if (visibleActivity != null) {
            track(visibleActivity)
            counter.activityStarted(visibleActivity)
        } else if (processVisible()) {
            counter.assumeForeground()
        }
        return this
    }

    /** Unregisters and unwraps every window it wrapped (a window another library wrapped since stays wrapped, but
     * inert). Idempotent. */
    override fun close() {
        val app = application ?: return
        application = null
        app.unregisterActivityLifecycleCallbacks(this)
        for ((window, callback) in tracked.entries.toList()) {
            callback.enabled = false
            if (window.callback === callback) window.callback = callback.original
        }
        tracked.clear()
    }

    private fun processVisible(): Boolean {
        val info = ActivityManager.RunningAppProcessInfo()
        ActivityManager.getMyMemoryState(info)
        return info.importance <= ActivityManager.RunningAppProcessInfo.IMPORTANCE_VISIBLE
    }

    private fun userActed() {
        if (throttle.shouldReport(SystemClock.elapsedRealtime())) client.recordActivity()
    }

    private fun track(activity: Activity) {
        val window = activity.window ?: return
        val current = window.callback ?: return
        if (current is TrackingCallback && current.enabled) return
        val wrapper = TrackingCallback(current)
        window.callback = wrapper
        tracked[window] = wrapper
    }

    override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) = track(activity)

    override fun onActivityStarted(activity: Activity) {
        track(activity)
        counter.activityStarted(activity)
    }

    override fun onActivityResumed(activity: Activity) = track(activity)

    override fun onActivityStopped(activity: Activity) =
        counter.activityStopped(activity, activity.isChangingConfigurations)

    override fun onActivityPaused(activity: Activity) {}
    override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
    override fun onActivityDestroyed(activity: Activity) {}

    /**
     * Passes every window event on, noting touches and keys as activity. Written out in full: Kotlin's `by`
     * delegation does not forward Java default methods (onProvideKeyboardShortcuts, onPointerCaptureChanged).
     */
    private inner class TrackingCallback(val original: Window.Callback) : Window.Callback {
        @Volatile
        var enabled = true

        override fun dispatchTouchEvent(event: MotionEvent?): Boolean {
            if (enabled) userActed()
            return original.dispatchTouchEvent(event)
        }

        override fun dispatchKeyEvent(event: KeyEvent?): Boolean {
            if (enabled) userActed()
            return original.dispatchKeyEvent(event)
        }

        override fun dispatchKeyShortcutEvent(event: KeyEvent?): Boolean = original.dispatchKeyShortcutEvent(event)
        override fun dispatchTrackballEvent(event: MotionEvent?): Boolean = original.dispatchTrackballEvent(event)
        override fun dispatchGenericMotionEvent(event: MotionEvent?): Boolean =
            original.dispatchGenericMotionEvent(event)
        override fun dispatchPopulateAccessibilityEvent(event: AccessibilityEvent?): Boolean =
            original.dispatchPopulateAccessibilityEvent(event)
        override fun onCreatePanelView(featureId: Int): View? = original.onCreatePanelView(featureId)
        override fun onCreatePanelMenu(featureId: Int, menu: Menu): Boolean = original.onCreatePanelMenu(featureId, menu)
        override fun onPreparePanel(featureId: Int, view: View?, menu: Menu): Boolean =
            original.onPreparePanel(featureId, view, menu)
        override fun onMenuOpened(featureId: Int, menu: Menu): Boolean = original.onMenuOpened(featureId, menu)
        override fun onMenuItemSelected(featureId: Int, item: MenuItem): Boolean =
            original.onMenuItemSelected(featureId, item)
        override fun onWindowAttributesChanged(attrs: WindowManager.LayoutParams?) =
            original.onWindowAttributesChanged(attrs)
        override fun onContentChanged() = original.onContentChanged()
        override fun onWindowFocusChanged(hasFocus: Boolean) = original.onWindowFocusChanged(hasFocus)
        override fun onAttachedToWindow() = original.onAttachedToWindow()
        override fun onDetachedFromWindow() = original.onDetachedFromWindow()
        override fun onPanelClosed(featureId: Int, menu: Menu) = original.onPanelClosed(featureId, menu)
        override fun onSearchRequested(): Boolean = original.onSearchRequested()
        override fun onSearchRequested(searchEvent: SearchEvent?): Boolean = original.onSearchRequested(searchEvent)
        override fun onWindowStartingActionMode(callback: ActionMode.Callback?): ActionMode? =
            original.onWindowStartingActionMode(callback)
        override fun onWindowStartingActionMode(callback: ActionMode.Callback?, type: Int): ActionMode? =
            original.onWindowStartingActionMode(callback, type)
        override fun onActionModeStarted(mode: ActionMode?) = original.onActionModeStarted(mode)
        override fun onActionModeFinished(mode: ActionMode?) = original.onActionModeFinished(mode)
        override fun onProvideKeyboardShortcuts(data: MutableList<KeyboardShortcutGroup>?, menu: Menu?, deviceId: Int) =
            original.onProvideKeyboardShortcuts(data, menu, deviceId)
        override fun onPointerCaptureChanged(hasCapture: Boolean) = original.onPointerCaptureChanged(hasCapture)
    }
}
