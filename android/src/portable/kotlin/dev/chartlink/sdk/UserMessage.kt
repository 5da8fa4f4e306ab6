package dev.chartlink.sdk

/**
 * What went wrong, as a sentence a person can read (Swift: `ChartLinkError.userMessage`): the SDK's own text (it
 * never holds a token or health data), without the field names that the generated `message` shows. An
 * [ChartLinkException.Authorization] says *why* through its [AuthorizationReason], so the app can tell "you chose
 * Deny" from "the provider refused".
 */
val ChartLinkException.userMessage: String
    get() = when (this) {
        is ChartLinkException.Network -> when (kind) {
            NetworkKind.UNREACHABLE -> "The provider could not be reached. Check the connection and try again."
            NetworkKind.CERTIFICATE ->
                "The provider's connection could not be verified (a Wi-Fi login page or a network filter may be in the way)."
            NetworkKind.THROTTLED -> retryAfterSeconds?.let { "The provider is busy. Try again in $it seconds." }
                ?: "The provider is busy. Try again in a moment."
            else -> "Network problem: $detail"
        }
        is ChartLinkException.Server -> "The provider's server could not answer this: $detail"
        is ChartLinkException.Authorization -> when (reason) {
            AuthorizationReason.DENIED -> "You chose not to share your record at the provider's portal. Nothing was linked."
            AuthorizationReason.EXPIRED -> "The login took too long. Please start again."
            AuthorizationReason.NO_LINK_IN_PROGRESS -> "This login is already finished or was cancelled. Please start again."
            AuthorizationReason.MISMATCH -> "This login answer does not belong to the login in progress. Please start again."
            AuthorizationReason.REFUSED -> "The provider refused: $detail"
            AuthorizationReason.INVALID_ANSWER -> "The provider's answer could not be used: $detail"
            AuthorizationReason.BROWSER_FAILED -> "The browser could not be opened: $detail"
        }
        is ChartLinkException.Discovery -> "This address is not a health record server ChartLink can use: $v1"
        is ChartLinkException.AccessRevoked ->
            "The provider ended this app's access (it may have expired). Your records stay on this device; link again to update them."
        is ChartLinkException.RelinkNeeded -> "Access has to be renewed. Link the account again."
        is ChartLinkException.Locked -> "Your health records are locked. Unlock to continue."
        is ChartLinkException.InvalidInput -> v1
        is ChartLinkException.Storage -> when (kind) {
            StorageKind.BUSY -> "The health records are busy. Try again in a moment."
            StorageKind.WRONG_KEY ->
                "The health records on this device can no longer be opened. Start over to link again."
            StorageKind.NEWER_VERSION -> "These health records were saved by a newer version of the app. Please update it."
            StorageKind.FULL -> "This device is out of space. Free some space and try again."
            StorageKind.DAMAGED -> "The health records on this device are damaged: $detail"
            StorageKind.SECURE_STORE -> "Secure storage problem: $detail"
            StorageKind.OTHER -> "Storage problem: $detail"
        }
        is ChartLinkException.Cancelled -> "Cancelled."
        is ChartLinkException.Internal -> "Something went wrong inside ChartLink. Please try again."
    }
