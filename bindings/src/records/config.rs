//! What the app passes in: [`ChartLinkConfig`], and the core enums it names (exported as they are).

use chartlink_core as core;
use chartlink_core::{DataCategory, ExportFormat, RevocationPolicy};

/// What the app is, as registered with the provider, and how the SDK behaves. Only `client_id` and
/// `redirect_uri` are required.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ChartLinkConfig {
    pub client_id: String,
    /// The registered redirect URI: the app's custom scheme (`myapp://callback`) or universal/app link.
    pub redirect_uri: String,
    /// The app's name, sent when registering this device with a provider (empty: the client id).
    #[uniffi(default = "")]
    pub app_name: String,
    /// The directory of the encrypted database (the app's private files dir). Null/nil: in memory only.
    #[uniffi(default = None)]
    pub data_dir: Option<String>,
    /// Idle time before the SDK locks (default 10 minutes, as patient portals do on phones).
    #[uniffi(default = 600)]
    pub lock_timeout_seconds: i64,
    /// Warn this long before the idle lock fires (0: no warning).
    #[uniffi(default = 60)]
    pub lock_warning_seconds: i64,
    /// Lock after this long in the background (0: as soon as the app leaves the screen).
    #[uniffi(default = 30)]
    pub background_grace_seconds: i64,
    /// What to do with a record whose access the provider ended (`invalid_grant`: expired or revoked). Null/nil:
    /// keep it readable until the user deletes it or links again (`KeepReadOnlyUntilConfirmed`).
    #[uniffi(default = None)]
    pub revocation: Option<RevocationPolicy>,
    /// The data to ask the patient for (empty: everything).
    #[uniffi(default = [])]
    pub wanted: Vec<DataCategory>,
}

fn seconds_to_ms(name: &str, seconds: i64) -> Result<i64, core::Error> {
    if seconds < 0 {
        return Err(core::Error::InvalidInput(format!("{name} is negative")));
    }
    seconds
        .checked_mul(1000)
        .ok_or_else(|| core::Error::InvalidInput(format!("{name} is too large")))
}

impl ChartLinkConfig {
    pub(crate) fn into_core(self) -> Result<core::AppConfig, core::Error> {
        if self.lock_timeout_seconds <= 0 {
            return Err(core::Error::InvalidInput(
                "lock_timeout_seconds must be positive".into(),
            ));
        }
        let warning_ms = seconds_to_ms("lock_warning_seconds", self.lock_warning_seconds)?;
        let lock = core::LockConfig {
            timeout_ms: seconds_to_ms("lock_timeout_seconds", self.lock_timeout_seconds)?,
            warning_ms: (warning_ms > 0).then_some(warning_ms),
            background_grace_ms: seconds_to_ms(
                "background_grace_seconds",
                self.background_grace_seconds,
            )?,
        };
        let mut config = core::AppConfig::new(&self.client_id, &self.redirect_uri);
        if !self.app_name.is_empty() {
            config.app_name = self.app_name;
        }
        config.data_dir = self.data_dir.map(Into::into);
        config.lock = lock;
        config.revocation = self.revocation.unwrap_or_default();
        if !self.wanted.is_empty() {
            config.wanted = self.wanted;
        }
        Ok(config)
    }
}

/// What happens to a record on the device when the provider's authorization server answers `invalid_grant`
/// (access ended: expired, or revoked — the answer does not say which). Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum RevocationPolicy {
    /// Delete it at once (opt-in: an expired grant deletes the record too).
    PurgeNow,
    /// Keep it readable until the user deletes it (`confirm_revoked`, `unlink`) or links again (the default).
    KeepReadOnlyUntilConfirmed,
}

/// The form of `export`: one FHIR Bundle (type collection), or NDJSON (one resource a line). Core's own enum.
#[uniffi::remote(Enum)]
pub enum ExportFormat {
    Bundle,
    Ndjson,
}

/// A kind of data the app can ask for. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum DataCategory {
    Demographics,
    LabResults,
    VitalSigns,
    SocialHistory,
    Allergies,
    Medications,
    Immunizations,
    Problems,
    Procedures,
    Visits,
    Documents,
    Appointments,
    /// Surveys, exams, imaging, procedure results, therapy, activity, functional status.
    OtherObservations,
    /// Care plans, goals and care teams.
    CarePlans,
    /// Implants and other devices.
    Devices,
    /// Orders and referrals.
    Orders,
    /// Insurance.
    Coverage,
    /// Answered questionnaires.
    Questionnaires,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_and_converts_the_lock_settings() {
        let config = |timeout, warning, grace| ChartLinkConfig {
            client_id: "app".into(),
            redirect_uri: "app://cb".into(),
            app_name: String::new(),
            data_dir: None,
            lock_timeout_seconds: timeout,
            lock_warning_seconds: warning,
            background_grace_seconds: grace,
            revocation: None,
            wanted: Vec::new(),
        };
        let core = config(600, 0, 30).into_core().expect("valid");
        assert_eq!(core.lock.timeout_ms, 600_000);
        assert_eq!(core.lock.warning_ms, None);
        assert_eq!(core.app_name, "app");
        assert_eq!(
            core.revocation,
            core::RevocationPolicy::KeepReadOnlyUntilConfirmed,
            "deleting is the patient's decision: never the default"
        );
        assert_eq!(core.wanted.len(), core::DataCategory::ALL.len());
        for bad in [config(0, 0, 0), config(600, -1, 0), config(i64::MAX, 0, 0)] {
            assert!(matches!(bad.into_core(), Err(core::Error::InvalidInput(_))));
        }
    }
}
