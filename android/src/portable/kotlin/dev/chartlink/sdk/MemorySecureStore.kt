package dev.chartlink.sdk

import java.util.concurrent.ConcurrentSkipListMap

/**
 * A [SecureStore] in memory: for tests and previews. Nothing survives the process, and nothing is protected —
 * apps use `KeystoreSecureStore` (Android) or `KeychainSecureStore` (iOS).
 */
class MemorySecureStore : SecureStore {
    private val items = ConcurrentSkipListMap<String, ByteArray>()

    override fun get(key: String): ByteArray? = items[key]?.copyOf()

    override fun put(key: String, value: ByteArray) {
        items[key] = value.copyOf()
    }

    override fun delete(key: String) {
        items.remove(key)
    }

    override fun keys(prefix: String): List<String> = items.keys.filter { it.startsWith(prefix) }
}
