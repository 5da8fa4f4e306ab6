package dev.chartlink.sdk

import java.util.concurrent.CopyOnWriteArrayList
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.channels.BufferOverflow

/**
 * The one [EventListener] handed to ChartLink, fanned out to any number of Flow collectors.
 *
 * ChartLink calls [onEvent] on its own threads; each collector gets the events through its own buffer, so a slow
 * collector never blocks the SDK (when a collector falls more than [BUFFER] events behind, its oldest progress
 * events are dropped; lock events are rare and never that far behind).
 */
class EventHub : EventListener {
    private val sinks = CopyOnWriteArrayList<(Event) -> Unit>()

    override fun onEvent(event: Event) {
        for (sink in sinks) sink(event)
    }

    /** A cold Flow: each collector sees the events that happen while it collects. */
    fun events(): Flow<Event> = callbackFlow {
        val sink: (Event) -> Unit = { trySend(it) }
        sinks.add(sink)
        awaitClose { sinks.remove(sink) }
    }.buffer(BUFFER, BufferOverflow.DROP_OLDEST)

    /** Calls [sink] for every event from now on, on the SDK's thread (keep it quick); for the client's own state. */
    fun observe(sink: (Event) -> Unit) {
        sinks.add(sink)
    }

    /** How many collectors are registered (tests use it to know a collector is listening). */
    val collectors: Int get() = sinks.size

    private companion object {
        const val BUFFER = 256
    }
}
