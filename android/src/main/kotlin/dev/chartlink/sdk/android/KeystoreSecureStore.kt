package dev.chartlink.sdk.android

import android.content.Context
import android.os.Build
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyPermanentlyInvalidatedException
import android.security.keystore.KeyProperties
import android.security.keystore.UserNotAuthenticatedException
import dev.chartlink.sdk.SecureStore
import dev.chartlink.sdk.SecureStoreException
import java.security.GeneralSecurityException
import java.security.KeyStore
import javax.crypto.AEADBadTagException
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/**
 * ChartLink's [SecureStore] on the Android Keystore. Values are encrypted with AES-256-GCM under keys generated
 * inside the Keystore (they never leave it; on devices with StrongBox or a TEE, not even the OS sees them) and kept,
 * encrypted, in private SharedPreferences in the [SealedRecord] format (bound to their name). The preferences file
 * is excluded from cloud backup and device transfer (res/xml, referenced from the manifest): its values are useless
 * without this device's Keystore keys.
 *
 * Two Keystore keys: one for tokens and pending logins, usable whenever the app runs (syncs continue in the
 * background; a login survives the process being killed), and one for ChartLink's store key that requires the user
 * to have authenticated (biometric or device credential) within [authValiditySeconds]: reading it is what `unlock()`
 * does. Show BiometricPrompt (no CryptoObject needed) before creating the client and before `unlock()`.
 *
 * Values that can never be read again — the Keystore key was permanently invalidated (screen lock removed), is
 * missing (data restored onto another device) or the record does not decrypt — are not a dead end:
 * - the store key reads as absent, so ChartLink answers `Storage` of kind `WRONG_KEY` and the app offers `ChartLinkAndroid.reset`;
 * - an account entry fails as unreadable, which ChartLink reports as `StoreNotice.UnreadableAccountEntry`; the app
 *   calls `discardUnreadableAccountEntries()` and the user links that account again.
 */
class KeystoreSecureStore(
    context: Context,
    private val authValiditySeconds: Int = 30,
) : SecureStore {
    private val prefs = context.getSharedPreferences(PREFS, Context.MODE_PRIVATE)
    private val keyStore = KeyStore.getInstance(KEYSTORE).apply { load(null) }

    override fun get(key: String): ByteArray? {
        val stored = prefs.getString(key, null) ?: return null
        val alias = aliasFor(key)
        return try {
            val secret = keyStore.getKey(alias, null) as SecretKey? ?: return unreadable(key)
            SealedRecord.open(secret, key, stored)
        } catch (e: UserNotAuthenticatedException) {
            throw SecureStoreException.Failed("authenticate first (biometric or device credential)")
        } catch (e: KeyPermanentlyInvalidatedException) {
            // Unusable for ever: drop it so that the next put creates a fresh one.
            runCatching { keyStore.deleteEntry(alias) }
            unreadable(key)
        } catch (e: AEADBadTagException) {
            unreadable(key)
        } catch (e: DamagedRecordException) {
            unreadable(key)
        } catch (e: GeneralSecurityException) {
            throw SecureStoreException.Failed("Keystore error: ${e.javaClass.simpleName}")
        }
    }

    override fun put(key: String, value: ByteArray) {
        val alias = aliasFor(key)
        val sealed = keystore {
            try {
                SealedRecord.seal(keyFor(alias), key, value)
            } catch (e: KeyPermanentlyInvalidatedException) {
                // A dead key (screen lock removed) is replaced: the value is new, nothing old is lost by it.
                keyStore.deleteEntry(alias)
                SealedRecord.seal(keyFor(alias), key, value)
            }
        }
        // commit(), not apply(): a rotated refresh token must be on disk before ChartLink uses it.
        if (!prefs.edit().putString(key, sealed).commit()) {
            throw SecureStoreException.Failed("could not write the secure preferences")
        }
    }

    override fun delete(key: String) {
        if (!prefs.edit().remove(key).commit()) throw SecureStoreException.Failed("could not write the secure preferences")
    }

    override fun keys(prefix: String): List<String> = prefs.all.keys.filter { it.startsWith(prefix) }.sorted()

    /** Deletes both Keystore keys and every stored value (`ChartLinkAndroid.reset` calls it after the core's reset). */
    fun deleteKeystoreKeys() {
        prefs.edit().clear().commit()
        for (alias in listOf(DATA_ALIAS, AUTH_ALIAS)) runCatching { keyStore.deleteEntry(alias) }
    }

    /** What ChartLink is told about a value that can never be decrypted (see the class comment). */
    private fun unreadable(key: String): ByteArray? {
        if (key == STORE_KEY) return null
        throw SecureStoreException.Failed("this entry can no longer be decrypted on this device")
    }

    private fun aliasFor(name: String) = if (name == STORE_KEY) AUTH_ALIAS else DATA_ALIAS

    private fun keyFor(alias: String): SecretKey = keyStore.getKey(alias, null) as SecretKey? ?: generate(alias)

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
        const val DATA_ALIAS = "dev.chartlink.sdk.data"
        const val AUTH_ALIAS = "dev.chartlink.sdk.store-key"
        /** chartlink_core::STORE_KEY: the entry that holds the database's key. */
        const val STORE_KEY = "chartlink/store-key"
    }
}
