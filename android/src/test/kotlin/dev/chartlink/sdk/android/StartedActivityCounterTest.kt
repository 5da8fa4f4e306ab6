package dev.chartlink.sdk.android

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class StartedActivityCounterTest {
    private val calls = mutableListOf<String>()
    private val counter = StartedActivityCounter({ calls += "foreground" }, { calls += "background" })
    private val main = Any()
    private val details = Any()

    @Test
    fun `foreground with the first start, background with the last stop`() {
        counter.activityStarted(main)
        counter.activityStarted(details) // main -> details
        counter.activityStopped(main, changingConfigurations = false)
        assertEquals(listOf("foreground"), calls)
        counter.activityStopped(details, changingConfigurations = false)
        assertEquals(listOf("foreground", "background"), calls)
        assertFalse(counter.isForeground)
        counter.activityStarted(main)
        assertEquals(listOf("foreground", "background", "foreground"), calls)
    }

    @Test
    fun `a rotation is not background`() {
        counter.activityStarted(main)
        counter.activityStopped(main, changingConfigurations = true)
        val recreated = Any()
        counter.activityStarted(recreated)
        assertEquals(listOf("foreground"), calls)
        assertEquals(1, counter.startedActivities)
    }

    @Test
    fun `an activity started before install ends the foreground when it stops`() {
        counter.assumeForeground()
        counter.assumeForeground()
        assertEquals(listOf("foreground"), calls)
        counter.activityStopped(main, changingConfigurations = false) // never seen starting
        assertEquals(listOf("foreground", "background"), calls)
    }

    @Test
    fun `a stop of an unknown activity while in the background changes nothing`() {
        counter.activityStopped(main, changingConfigurations = false)
        assertTrue(calls.isEmpty())
    }

    @Test
    fun `user activity is reported at most once a second`() {
        val throttle = ActivityThrottle(1_000)
        assertTrue(throttle.shouldReport(10_000))
        assertFalse(throttle.shouldReport(10_500))
        assertTrue(throttle.shouldReport(11_000))
        assertFalse(throttle.shouldReport(11_999))
    }
}
