package dev.chartlink.sdk.android

import android.content.Context
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.UserNotAuthenticatedException
import android.util.Base64
import dev.chartlink.sdk.SecureStore
import dev.chartlink.sdk.SecureStoreException
import java.security.GeneralSecurityException
import java.security.KeyStore
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * ChartLink's [SecureStore] on the Android Keystore. Values are encrypted with AES-256-GCM under keys generated
 * inside the Keystore (they never leave it; on devices with StrongBox or a TEE, not even the OS sees them) and kept,
 * encrypted, in private SharedPreferences. Each value is bound to its name (GCM associated data), so values cannot
 * be swapped between entries.
 *
 * Two Keystore keys: one for tokens, usable whenever the app runs (syncs continue in the background), and one for
 * ChartLink's store key that requires the user to have authenticated (biometric or device credential) within
 * [authValiditySeconds]: reading it is what `unlock()` does, so the records open only after the user proved who
 * they are. Show BiometricPrompt (no CryptoObject needed) before creating the client and before `unlock()`.
 */
class KeystoreSecureStore(
    context: Context,
    private val authValiditySeconds: Int = 30,
) : SecureStore {
    private val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
    private val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }

    override fun get(key: String): ByteArray? {
        val stored = prefs.getString(key, null) ?: return null
        return keystore { decrypt(key, Base64.decode(stored, Base64.NO_WRAP)) }
    }

    override fun put(key: String, value: ByteArray) {
        val sealed = keystore { encrypt(key, value) }
        // commit(), not apply(): a rotated refresh token must be on disk before ChartLink uses it.
        if (!prefs.edit().putString(key, Base64.encodeToString(sealed, Base64.NO_WRAP)).commit()) {
            throw SecureStoreException.Failed("could not write the secure preferences")
        }
    }

    override fun delete(key: String) {
        if (!prefs.edit().remove(key).commit()) throw SecureStoreException.Failed("could not write the secure preferences")
    }

    override fun keys(prefix: String): List<String> = prefs.all.keys.filter { it.startsWith(prefix) }.sorted()

    private fun encrypt(name: String, value: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, keyFor(name))
        cipher.updateAAD(name.toByteArray())
        return cipher.iv + cipher.doFinal(value)
    }

    private fun decrypt(name: String, sealed: ByteArray): ByteArray {
        if (sealed.size <= IV_BYTES) throw SecureStoreException.Failed("a stored value is damaged")
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, keyFor(name), GCMParameterSpec(TAG_BITS, sealed, 0, IV_BYTES))
        cipher.updateAAD(name.toByteArray())
        return cipher.doFinal(sealed, IV_BYTES, sealed.size - IV_BYTES)
    }

    private fun keyFor(name: String): SecretKey {
        val alias = if (name == STORE_KEY) AUTH_ALIAS else DATA_ALIAS
        return keyStore.getKey(alias, null) as SecretKey? ?: generate(alias)
    }

    private fun generate(alias: String): SecretKey {
        val spec = KeyGenParameterSpec.Builder(alias, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
        if (alias == AUTH_ALIAS) {
            spec.setUserAuthenticationRequired(true)
            // A new fingerprint must not destroy the records' key: the user still authenticates to use it.
            spec.setInvalidatedByBiometricEnrollment(false)
            if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
                spec.setUserAuthenticationParameters(
                    authValiditySeconds,
                    KeyProperties.AUTH_BIOMETRIC_STRONG or KeyProperties.AUTH_DEVICE_CREDENTIAL,
                )
            } else {
                @Suppress("DEPRECATION")
                spec.setUserAuthenticationValidityDurationSeconds(authValiditySeconds)
            }
        }
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, KEYSTORE).run {
            init(spec.build())
            generateKey()
        }
    }

    /** Keystore failures become the typed error ChartLink expects (no secret in the message). */
    private fun <T> keystore(block: () -> T): T = try {
        block()
    } catch (e: UserNotAuthenticatedException) {
        throw SecureStoreException.Failed("authenticate first (biometric or device credential)")
    } catch (e: KeyPermanentlyInvalidatedException) {
        throw SecureStoreException.Failed("the Keystore key was invalidated (screen lock removed)")
    } catch (e: GeneralSecurityException) {
        throw SecureStoreException.Failed("Keystore error: ${e.javaClass.simpleName}")
    } catch (e: IllegalStateException) {
        // Generating an authentication-bound key without a secure lock screen.
        throw SecureStoreException.Failed("set up a screen lock to protect health records")
    }

    private companion object {
        const val KEYSTORE = "AndroidKeyStore"
        const val PREFS = "dev.chartlink.sdk.secure"
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val IV_BYTES = 12
        const val TAG_BITS = 128
        const val DATA_ALIAS = "dev.chartlink.sdk.data"
        const val AUTH_ALIAS = "dev.chartlink.sdk.store-key"
        /** chartlink_core::STORE_KEY: the entry that holds the database's key. */
        const val STORE_KEY = "chartlink/store-key"
    }
}
