package dev.chartlink.sdk.android

import java.util.Base64
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The format in which `KeystoreSecureStore` keeps one value in its preferences: Base64 (no wrapping) of
 * `version (1 byte) | IV (12 bytes) | AES-256-GCM ciphertext + 16-byte tag`, with the entry's name in the associated
 * data so that values cannot be swapped between entries. The cipher runs with whatever key it is given: the
 * Android Keystore's on a device, a software key in the JVM tests (the Keystore picks the IV itself; so does the JVM).
 *
 * [open] throws [DamagedRecordException] for a record that is not in this format, and the cipher's
 * `AEADBadTagException` for one sealed under another key, for another name, or tampered with.
 */
object SealedRecord {
    const val VERSION: Byte = 1
    const val IV_BYTES = 12
    const val TAG_BITS = 128
    private const val TRANSFORMATION = "AES/GCM/NoPadding"

    fun seal(key: SecretKey, name: String, value: ByteArray): String {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, key)
        cipher.updateAAD(aad(name))
        val sealed = cipher.doFinal(value)
        val iv = cipher.iv
        if (iv.size != IV_BYTES) throw DamagedRecordException("the cipher chose a ${iv.size}-byte IV")
        return Base64.getEncoder().encodeToString(byteArrayOf(VERSION) + iv + sealed)
    }

    fun open(key: SecretKey, name: String, stored: String): ByteArray {
        val bytes = try {
            Base64.getDecoder().decode(stored)
        } catch (e: IllegalArgumentException) {
            throw DamagedRecordException("not Base64")
        }
        if (bytes.isEmpty() || bytes[0] != VERSION) throw DamagedRecordException("unknown record version")
        if (bytes.size < 1 + IV_BYTES + TAG_BITS / 8) throw DamagedRecordException("record too short")
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(TAG_BITS, bytes, 1, IV_BYTES))
        cipher.updateAAD(aad(name))
        return cipher.doFinal(bytes, 1 + IV_BYTES, bytes.size - 1 - IV_BYTES)
    }

    private fun aad(name: String) = "chartlink-secure-store/v1:$name".toByteArray(Charsets.UTF_8)
}

/** A stored value that is not a [SealedRecord] (written by something else, or cut short). */
class DamagedRecordException(message: String) : Exception(message)
