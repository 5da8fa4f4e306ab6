// The Kotlin host test of live reads (issue 21): `client.live { ... }` is a Flow that starts with the current
// answer and emits again when a sync, a patient switch or an unlock changes it, as Room's queries do; while locked
// it emits nothing.
package dev.chartlink.sdk.test

import dev.chartlink.sdk.*
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout

private suspend fun <T> awaitValue(seen: List<T>, what: String, match: (T) -> Boolean): T {
    withTimeout(10_000) { while (seen.none(match)) delay(20) }
    return seen.last(match)
}

suspend fun liveReads() = coroutineScopeTest { scope ->
    val browser = BrowserQueue(
        PortalBrowser("maria", "maria-demo", "maria-garcia"),
        PortalBrowser("maria", "maria-demo", "leo-garcia"),
    )
    // The sandbox's clock may run ahead (earlier tests moved it): the client's clock follows it.
    val sandboxNow = Regex("\"now\":\\s*(\\d+)").find(admin("POST", "/clock/advance", """{"seconds": 0}"""))!!
        .groupValues[1].toLong()
    val clock = ManualClock()
    clock.advanceSeconds(sandboxNow - System.currentTimeMillis() / 1000)
    ChartLinkClient(config(), MemorySecureStore(), browser, clock).use { client ->
        val maria = client.link(FHIR_BASE)
        val leo = client.link(FHIR_BASE)
        client.sync(maria.id)
        client.sync(leo.id)
        client.switchPatient(maria.id)

        val seen = CopyOnWriteArrayList<Pair<String?, Int>>()
        val job = scope.launch(Dispatchers.Default) {
            client.live { activePatient()?.name to labResults().size }.collect { seen.add(it) }
        }
        val first = awaitValue(seen, "the current answer") { it.first == "Maria Garcia" }
        assertTrue(first.second > 0, "$first")

        // A sync that brings a new result emits again.
        admin("POST", "/clock/advance", """{"seconds": 60}""")
        clock.advanceSeconds(60)
        admin(
            "PUT", "/resources/Observation/live-kotlin-lab",
            """{"resourceType": "Observation", "id": "live-kotlin-lab", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "99322-8", "display": "Live lab"}]},
                "subject": {"reference": "Patient/maria-garcia"}, "effectiveDateTime": "2026-12-01",
                "valueQuantity": {"value": 1.5, "unit": "mg/dL"}}""",
        )
        client.sync(maria.id)
        awaitValue(seen, "the synced result") { it.first == "Maria Garcia" && it.second == first.second + 1 }

        // A switch emits the other patient's answer.
        client.switchPatient(leo.id)
        awaitValue(seen, "Leo's record") { it.first == "Leo Garcia" }

        // Locked: nothing; unlocked: the answer again.
        client.lock()
        delay(300)
        val whileLocked = seen.size
        client.unlock()
        delay(300)
        assertEquals(whileLocked, seen.size, "an equal answer is not repeated; nothing was emitted while locked")
        client.switchPatient(maria.id)
        awaitValue(seen, "Maria again") { it.first == "Maria Garcia" && it.second == first.second + 1 }
        job.cancelAndJoin()
    }
}
