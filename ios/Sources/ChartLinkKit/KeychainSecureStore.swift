#if canImport(Security) && canImport(LocalAuthentication)
import Foundation
import LocalAuthentication
import Security

/// ChartLink's `SecureStore` on the iOS Keychain (Kotlin: `KeystoreSecureStore`). Every item is a generic password
/// of `service` in the data-protection keychain that never leaves the device (no iCloud Keychain, no restore onto
/// another device: a `…ThisDeviceOnly` class). Two classes of items, by key:
///
/// - **The store key** (`chartlink/store-key`, the key of the encrypted records) carries an access control:
///   reading it, which is what creating the client and `unlock()` do, shows Face ID / Touch ID (or the passcode,
///   with `.userPresence`); it is readable only while the device is unlocked
///   (`kSecAttrAccessibleWhenPasscodeSetThisDeviceOnly`: removing the passcode destroys it, and ChartLink then
///   answers `.Storage(kind: .wrongKey)`, whose way out is `resetChartlink`).
/// - **Everything else** — account tokens (`chartlink/account/…`) and pending logins (`chartlink/pending/…`) — is
///   readable after the first unlock since boot (`kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`), so a
///   background sync can renew access while the phone is locked in a pocket, without any prompt.
///
/// The app's Info.plist needs `NSFaceIDUsageDescription` (why the app uses Face ID, e.g. "Face ID unlocks your
/// health records"): without it, iOS refuses Face ID and falls back to the passcode (`.userPresence`) or fails
/// (`.biometryCurrentSet`). Calls come from ChartLink's threads; the system shows the prompt itself.
public final class KeychainSecureStore: SecureStore, @unchecked Sendable {
    /// How the store key is protected.
    public enum StoreKeyProtection: Sendable {
        /// Face ID / Touch ID, falling back to the device passcode (survives a new enrolled finger or face).
        case userPresence
        /// Only the biometrics enrolled now: enrolling another finger or face destroys the key, and the records
        /// must be synced again.
        case biometryCurrentSet
    }

    /// `chartlink_core::STORE_KEY`.
    public static let storeKey = "chartlink/store-key"

    private let service: String
    private let protection: StoreKeyProtection
    private let prompt: String

    public init(
        service: String = "dev.chartlink.sdk",
        protection: StoreKeyProtection = .userPresence,
        prompt: String = "Unlock your health records"
    ) {
        self.service = service
        self.protection = protection
        self.prompt = prompt
    }

    /// Whether `key` is the biometric-protected store key (every other key is readable after first unlock).
    public static func isBiometricProtected(_ key: String) -> Bool {
        key == storeKey
    }

    public func get(key: String) throws -> Data? {
        var query = base(key)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        if Self.isBiometricProtected(key) {
            let context = LAContext()
            context.localizedReason = prompt
            query[kSecUseAuthenticationContext as String] = context
        }
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data else { throw failure("an item is not data") }
            return data
        case errSecItemNotFound:
            return nil
        default:
            throw failure(status)
        }
    }

    /// Replaces the value in place (SecItemUpdate), so a rotated token is never missing in between. The update also
    /// sets the item's protection class, so an item written by an older version moves to the class of its key.
    /// The store key (written once, when the database is created) is replaced by delete + add instead: updating an
    /// item behind an access control would itself ask for Face ID.
    public func put(key: String, value: Data) throws {
        var item = base(key)
        item[kSecValueData as String] = value
        if Self.isBiometricProtected(key) {
            item[kSecAttrAccessControl as String] = try accessControl()
            try delete(key: key)
            let status = SecItemAdd(item as CFDictionary, nil)
            guard status == errSecSuccess else { throw failure(status) }
            return
        }
        let update: [String: Any] = [
            kSecValueData as String: value,
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(base(key) as CFDictionary, update as CFDictionary)
        if status == errSecItemNotFound {
            item[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            status = SecItemAdd(item as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw failure(status) }
    }

    public func delete(key: String) throws {
        let status = SecItemDelete(base(key) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw failure(status) }
    }

    public func keys(prefix: String) throws -> [String] {
        // The same base attributes as every other query (class, service, data-protection keychain), minus the account.
        var query = base(nil)
        query[kSecReturnAttributes as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitAll
        // Listing names never needs (or shows) the biometric check.
        let context = LAContext()
        context.interactionNotAllowed = true
        query[kSecUseAuthenticationContext as String] = context
        var items: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &items)
        switch status {
        case errSecSuccess:
            let attributes = items as? [[String: Any]] ?? []
            return attributes.compactMap { $0[kSecAttrAccount as String] as? String }
                .filter { $0.hasPrefix(prefix) }
                .sorted()
        case errSecItemNotFound:
            return []
        default:
            throw failure(status)
        }
    }

    /// The attributes every query and item shares: one class, one service, the data-protection keychain (on iOS
    /// the only one; stated so the same code behaves the same on a Mac running the app), and the account.
    private func base(_ key: String?) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecUseDataProtectionKeychain as String: true,
        ]
        if let key { query[kSecAttrAccount as String] = key }
        return query
    }

    private func accessControl() throws -> SecAccessControl {
        let flags: SecAccessControlCreateFlags =
            protection == .biometryCurrentSet ? .biometryCurrentSet : .userPresence
        var error: Unmanaged<CFError>?
        guard
            let access = SecAccessControlCreateWithFlags(
                nil, kSecAttrAccessibleWhenPasscodeSetThisDeviceOnly, flags, &error)
        else {
            throw failure("cannot create the access control (is a passcode set?)")
        }
        return access
    }

    private func failure(_ status: OSStatus) -> SecureStoreError {
        switch status {
        case errSecUserCanceled, errSecAuthFailed:
            return .Failed(reason: "the user did not confirm their identity")
        case errSecInteractionNotAllowed:
            return .Failed(reason: "the device is locked")
        default:
            return .Failed(reason: "Keychain error \(status)")
        }
    }

    private func failure(_ reason: String) -> SecureStoreError {
        .Failed(reason: reason)
    }
}
#endif
