import Foundation

/// A `SecureStore` in memory: for tests and previews. Nothing survives the process and nothing is protected;
/// apps use `KeychainSecureStore` (Kotlin: `MemorySecureStore`).
public final class MemorySecureStore: SecureStore, @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String: Data] = [:]

    public init() {}

    public func get(key: String) throws -> Data? {
        lock.lock()
        defer { lock.unlock() }
        return items[key]
    }

    public func put(key: String, value: Data) throws {
        lock.lock()
        defer { lock.unlock() }
        items[key] = value
    }

    public func delete(key: String) throws {
        lock.lock()
        defer { lock.unlock() }
        items[key] = nil
    }

    public func keys(prefix: String) throws -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return items.keys.filter { $0.hasPrefix(prefix) }.sorted()
    }
}
