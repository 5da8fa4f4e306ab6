// The Kotlin host test of background sync while locked (issue 14): a client started locked (as the OS starts the app
// for a JobScheduler job or a BGAppRefreshTask) syncs what the server added, reads still throw Locked, the event
// Flow delivers the counts-only BackgroundSyncFinished, and after unlockAsync() the record and whatsNew() show it.
package dev.chartlink.sdk.test

import dev.chartlink.sdk.*
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue

/** The sandbox's admin API: what the provider's EHR does on its side. */
internal fun admin(method: String, path: String, json: String): String {
    val request = HttpRequest.newBuilder(URI("$SANDBOX/admin$path"))
        .header("Content-Type", "application/json")
        .method(method, HttpRequest.BodyPublishers.ofString(json))
        .build()
    val answer = HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString())
    check(answer.statusCode() in 200..299) { "admin $path answered ${answer.statusCode()}: ${answer.body()}" }
    return answer.body()
}

private const val NEW_LAB = "bg-kotlin-lab"
private const val NEW_LAB_NAME = "Kotlin zebra antibody"

suspend fun lockedBackgroundSync() = coroutineScopeTest { scope ->
    val store = MemorySecureStore()
    val clock = ManualClock()
    val dir = kotlin.io.path.createTempDirectory("chartlink-background").toFile()
    try {
        val cfg = config().copy(dataDir = dir.path)
        val accountId = ChartLinkClient(cfg, store, PortalBrowser("daniel", "daniel-demo", "daniel-chen"), clock).use { c ->
            val account = c.link(FHIR_BASE)
            c.sync(account.id)
            account.id
        }
        // The provider files a new result an hour later.
        admin("POST", "/clock/advance", """{"seconds": 3600}""")
        clock.advanceSeconds(3600)
        admin(
            "PUT", "/resources/Observation/$NEW_LAB",
            """{"resourceType": "Observation", "id": "$NEW_LAB", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "99321-0", "display": "$NEW_LAB_NAME"}], "text": "$NEW_LAB_NAME"},
                "subject": {"reference": "Patient/daniel-chen"}, "effectiveDateTime": "2026-11-30",
                "valueQuantity": {"value": 31.4159, "unit": "mg/dL"}}""",
        )

        // The OS starts the app for its background job: locked, no biometric prompt, no store key read.
        ChartLinkClient(cfg, store, clock = clock, startLocked = true).use { c ->
            val recorder = Recorder(scope, c)
            assertEquals(listOf(accountId), c.syncDue(SyncBudget()))
            val report = c.backgroundSync(SyncBudget())
            assertTrue(report.locked)
            assertEquals(1L, report.total, "$report")
            val news = report.accounts.single()
            assertEquals(BackgroundOutcome.SYNCED, news.outcome)
            assertEquals(listOf(KindCount(RecordKind.LAB_RESULT, 1)), news.counts)
            val event = recorder.await("background sync finished") { it is Event.BackgroundSyncFinished }
                as Event.BackgroundSyncFinished
            assertEquals(report, event.report)
            for (secret in listOf(NEW_LAB, NEW_LAB_NAME, "99321-0", "31.4159")) {
                assertFalse(event.toString().contains(secret), "the event names $secret")
            }
            assertTrue(recorder.events.none { it is Event.SyncFinished || it is Event.SyncProgress })
            assertFailsWith<ChartLinkException.Locked> { c.labResults() }
            assertFailsWith<ChartLinkException.Locked> { c.whatsNew() }
            assertFailsWith<ChartLinkException.Locked> { c.accounts() }
            assertTrue(c.syncDue(SyncBudget()).isEmpty(), "synced just now")

            c.unlockAsync()
            val whatsNew = c.whatsNew()
            assertEquals(listOf(NEW_LAB), whatsNew.map { it.id })
            assertEquals(NEW_LAB_NAME, whatsNew.single().displayName)
            assertEquals(RecordKind.LAB_RESULT, whatsNew.single().kind)
            assertEquals("2026-11-30", whatsNew.single().date)
            c.switchPatient(accountId)
            assertTrue(c.labResults().any { it.id == NEW_LAB && it.name == NEW_LAB_NAME })
            c.markWhatsNewSeen()
            assertTrue(c.whatsNew().isEmpty())
            recorder.stop()
        }
    } finally {
        dir.deleteRecursively()
    }
}
