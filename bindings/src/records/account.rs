//! Links and patients: [`LinkedAccount`], [`AuthorizationRequest`], [`UnlinkOutcome`], [`PatientContext`].

use chartlink_core as core;
use chartlink_core::{AccountStatus, MergeReason, Relation, Revocation};

use super::{FhirDate, parse_date};

/// Whether a link still gives access. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum AccountStatus {
    Active,
    /// The provider's authorization server ended access: link again.
    Revoked,
    /// Access can no longer be renewed; the record stays readable: link again to resume syncing.
    RelinkNeeded,
}

/// One link: this app's access to one patient's record at one provider. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LinkedAccount {
    pub id: String,
    /// The FHIR id of the patient whose record this is.
    pub patient_id: String,
    /// The provider's FHIR base URL.
    pub fhir_base: String,
    pub status: AccountStatus,
    pub linked_at_ms: i64,
    /// Whether this device was registered with the provider (`register_device`).
    pub device_registered: bool,
    /// Whether the link renews its own access (a refresh token or a registered device); false: the user links
    /// again when the access token expires.
    pub can_renew: bool,
    /// Kinds of data asked for that the provider did not grant, wholly or in part.
    pub not_granted: Vec<core::DataCategory>,
    /// The signed-in user's name (the patient, or the parent or proxy), from their `fhirUser` resource.
    pub user_name: Option<String>,
}

impl From<core::LinkedAccount> for LinkedAccount {
    fn from(a: core::LinkedAccount) -> Self {
        let not_granted = a.not_granted().into_iter().map(|c| c.category).collect();
        Self {
            id: a.id,
            patient_id: a.patient_id,
            fhir_base: a.server.fhir_base.to_string(),
            status: a.status,
            linked_at_ms: a.linked_at_ms,
            device_registered: a.device_client_id.is_some(),
            can_renew: a.can_renew,
            not_granted,
            user_name: a.user_name,
        }
    }
}

/// A started link (`begin_link`): open `url` in the system browser, then pass the redirect to `complete_link`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthorizationRequest {
    pub url: String,
    /// Where the browser will end (ASWebAuthenticationSession's callback scheme comes from it).
    pub redirect_uri: String,
    pub expires_at_ms: i64,
}

impl From<core::AuthorizationRequest> for AuthorizationRequest {
    fn from(r: core::AuthorizationRequest) -> Self {
        Self {
            url: r.url.to_string(),
            redirect_uri: r.redirect_uri,
            expires_at_ms: r.expires_at_ms,
        }
    }
}

/// What unlinking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct UnlinkOutcome {
    /// Whether the provider confirmed the revocation (local data is removed either way).
    pub revoked_at_provider: bool,
    /// What the provider answered (RFC 7009).
    pub revocation: core::Revocation,
}

/// The provider's side of an unlink (RFC 7009). Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum Revocation {
    /// The provider revoked the grant.
    Revoked,
    /// The provider revokes only refresh tokens and the link had none: its access token lapses at expiry.
    AccessTokenLapses,
    /// The provider has no revocation endpoint: remove the app in the provider's portal.
    NoEndpoint,
    /// The provider could not be reached: the grant may still be live there.
    Unreachable,
    /// The provider refused the revocation.
    Refused,
}

impl From<core::UnlinkOutcome> for UnlinkOutcome {
    fn from(o: core::UnlinkOutcome) -> Self {
        Self {
            revoked_at_provider: o.revoked_at_provider,
            revocation: o.revocation,
        }
    }
}

/// How the user is related to a patient. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum Relation {
    Myself,
    Child,
    AdultUnderProxy,
    Unknown,
}

/// One patient, as a family switcher shows them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientContext {
    /// Pass to `switch_patient`.
    pub id: String,
    pub account_ids: Vec<String>,
    pub name: Option<String>,
    /// The birth date as the provider gave it (a year alone for some).
    pub birth_date: Option<FhirDate>,
    pub relation: Relation,
    /// A 13 to 17 year old's record seen by a parent: the provider withholds confidential items. Show it as
    /// restricted, not as an error.
    pub restricted: bool,
    /// The FHIR bases of the providers holding this record.
    pub providers: Vec<String>,
    /// The provider ended access (the data may be kept read-only until the user confirms).
    pub revoked: bool,
}

impl From<core::PatientContext> for PatientContext {
    fn from(p: core::PatientContext) -> Self {
        Self {
            id: p.id,
            account_ids: p.account_ids,
            name: p.name,
            birth_date: parse_date(p.birth_date.as_deref()),
            relation: p.relation,
            restricted: p.restricted,
            providers: p.providers,
            revoked: p.revoked,
        }
    }
}

/// Why two linked records look like one person's.
#[uniffi::remote(Enum)]
pub enum MergeReason {
    SharedIdentifier,
    SameNameAndBirthDate,
}

/// Patients at different providers who look like one person: ask the user, then `confirm_merge`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MergeSuggestion {
    pub context_ids: Vec<String>,
    pub name: Option<String>,
    pub birth_date: Option<FhirDate>,
    pub providers: Vec<String>,
    pub reason: MergeReason,
}

impl From<core::MergeSuggestion> for MergeSuggestion {
    fn from(m: core::MergeSuggestion) -> Self {
        Self {
            context_ids: m.context_ids,
            name: m.name,
            birth_date: parse_date(m.birth_date.as_deref()),
            providers: m.providers,
            reason: m.reason,
        }
    }
}
