package dev.chartlink.sdk.android

import java.util.Base64
import javax.crypto.AEADBadTagException
import javax.crypto.KeyGenerator
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class SealedRecordTest {
    private fun key() = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()
    private val key = key()
    private val token = "refresh-token-value".toByteArray()

    @Test
    fun `a sealed value opens under its key and name`() {
        val stored = SealedRecord.seal(key, "chartlink/account/a1", token)
        assertArrayEquals(token, SealedRecord.open(key, "chartlink/account/a1", stored))
        val bytes = Base64.getDecoder().decode(stored)
        assertEquals(SealedRecord.VERSION, bytes[0])
        assertEquals(1 + 12 + token.size + 16, bytes.size)
        assertNotEquals(stored, SealedRecord.seal(key, "chartlink/account/a1", token), "a fresh IV each time")
    }

    @Test
    fun `another name, another key or a flipped bit fails the tag`() {
        val stored = SealedRecord.seal(key, "chartlink/account/a1", token)
        assertThrows<AEADBadTagException> { SealedRecord.open(key, "chartlink/account/a2", stored) }
        assertThrows<AEADBadTagException> { SealedRecord.open(key(), "chartlink/account/a1", stored) }
        val bytes = Base64.getDecoder().decode(stored)
        bytes[bytes.size - 1] = (bytes[bytes.size - 1].toInt() xor 1).toByte()
        val tampered = Base64.getEncoder().encodeToString(bytes)
        assertThrows<AEADBadTagException> { SealedRecord.open(key, "chartlink/account/a1", tampered) }
    }

    @Test
    fun `something that is not a record is damaged, not a crash`() {
        for (stored in listOf("", "%%%", Base64.getEncoder().encodeToString(byteArrayOf(1, 2, 3)),
            Base64.getEncoder().encodeToString(ByteArray(40) { 9 }))) {
            assertThrows<DamagedRecordException> { SealedRecord.open(key, "chartlink/store-key", stored) }
        }
    }
}
