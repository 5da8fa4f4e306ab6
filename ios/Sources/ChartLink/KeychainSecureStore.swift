import Foundation
import LocalAuthentication
import Security

/// ChartLink's `SecureStore` on the iOS Keychain (Kotlin: `KeystoreSecureStore`). Every item is a generic password
/// of `service`, readable only while the device is unlocked and never leaving it (no iCloud Keychain, no backup to
/// another device: `kSecAttrAccessibleWhenUnlockedThisDeviceOnly`).
///
/// ChartLink's store key — the key of the encrypted records — additionally carries an access control: reading it,
/// which is what `ChartLink.init` and `unlock()` do, shows Face ID / Touch ID (or the passcode, with
/// `.userPresence`). So the records open only after the user proved who they are. Tokens have no such check, so
/// syncs can continue in the background. Calls come from ChartLink's threads; the system shows the prompt itself.
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

    public func get(key: String) throws -> Data? {
        var query = base(key)
        query[kSecReturnData as String] = true
        query[kSecMatchLimit as String] = kSecMatchLimitOne
        if key == Self.storeKey {
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

    /// Replaces the value in place (SecItemUpdate), so a rotated token is never missing in between.
    public func put(key: String, value: Data) throws {
        let update = [kSecValueData as String: value] as CFDictionary
        var status = SecItemUpdate(base(key) as CFDictionary, update)
        if status == errSecItemNotFound {
            var item = base(key)
            item[kSecValueData as String] = value
            if key == Self.storeKey {
                item[kSecAttrAccessControl as String] = try accessControl()
            } else {
                item[kSecAttrAccessible as String] = kSecAttrAccessibleWhenUnlockedThisDeviceOnly
            }
            status = SecItemAdd(item as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw failure(status) }
    }

    public func delete(key: String) throws {
        let status = SecItemDelete(base(key) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw failure(status) }
    }

    public func keys(prefix: String) throws -> [String] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecReturnAttributes as String: true,
            kSecMatchLimit as String: kSecMatchLimitAll,
        ]
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

    private func base(_ key: String) -> [String: Any] {
        [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: key,
            kSecUseDataProtectionKeychain as String: true,
        ]
    }

    private func accessControl() throws -> SecAccessControl {
        let flags: SecAccessControlCreateFlags =
            protection == .biometryCurrentSet ? .biometryCurrentSet : .userPresence
        var error: Unmanaged<CFError>?
        guard
            let access = SecAccessControlCreateWithFlags(
                nil, kSecAttrAccessibleWhenUnlockedThisDeviceOnly, flags, &error)
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
