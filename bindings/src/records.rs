//! The records and enums an app shows, mirrored from core's types with the `From` conversions.
//!
//! Shaped for the screen, not for FHIR: dates are the server's text at its precision ("2019-05",
//! "2024-03-02T10:15:00Z"), values come as display text plus the number and unit when there is one, counts and
//! times are signed 64-bit (Kotlin `Long`, Swift `Int64`; unsigned types would become `ULong`/`UInt64`).

use chartlink_core as core;
use chartlink_core::views::{self, FhirDate, ObservationValue, Quantity, ReferenceRange};

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn date(d: Option<FhirDate>) -> Option<String> {
    d.map(|d| d.to_string())
}

// ---- configuration -------------------------------------------------------------------------------------------

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
    /// What to do with a record whose access the provider ended. Null/nil: delete it at once.
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
        config.revocation = self.revocation.unwrap_or(RevocationPolicy::PurgeNow).into();
        if !self.wanted.is_empty() {
            config.wanted = self.wanted.into_iter().map(Into::into).collect();
        }
        Ok(config)
    }
}

/// What happens to a record on the device when the provider ends access (a child turned 18, a proxy was
/// withdrawn, the patient removed the app on the portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RevocationPolicy {
    /// Delete it at once.
    PurgeNow,
    /// Keep it read-only until the user confirms (`confirm_revoked`).
    KeepReadOnlyUntilConfirmed,
}

impl From<RevocationPolicy> for core::RevocationPolicy {
    fn from(p: RevocationPolicy) -> Self {
        match p {
            RevocationPolicy::PurgeNow => Self::PurgeNow,
            RevocationPolicy::KeepReadOnlyUntilConfirmed => Self::KeepReadOnlyUntilConfirmed,
        }
    }
}

/// A kind of data the app can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

impl From<DataCategory> for core::DataCategory {
    fn from(c: DataCategory) -> Self {
        use DataCategory as D;
        match c {
            D::Demographics => Self::Demographics,
            D::LabResults => Self::LabResults,
            D::VitalSigns => Self::VitalSigns,
            D::SocialHistory => Self::SocialHistory,
            D::Allergies => Self::Allergies,
            D::Medications => Self::Medications,
            D::Immunizations => Self::Immunizations,
            D::Problems => Self::Problems,
            D::Procedures => Self::Procedures,
            D::Visits => Self::Visits,
            D::Documents => Self::Documents,
            D::Appointments => Self::Appointments,
            D::OtherObservations => Self::OtherObservations,
            D::CarePlans => Self::CarePlans,
            D::Devices => Self::Devices,
            D::Orders => Self::Orders,
            D::Coverage => Self::Coverage,
            D::Questionnaires => Self::Questionnaires,
        }
    }
}

// ---- accounts and patients -----------------------------------------------------------------------------------

/// Whether a link still gives access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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
}

impl From<core::LinkedAccount> for LinkedAccount {
    fn from(a: core::LinkedAccount) -> Self {
        Self {
            id: a.id,
            patient_id: a.patient_id,
            fhir_base: a.server.fhir_base.to_string(),
            status: match a.status {
                core::AccountStatus::Active => AccountStatus::Active,
                core::AccountStatus::Revoked => AccountStatus::Revoked,
                core::AccountStatus::RelinkNeeded => AccountStatus::RelinkNeeded,
            },
            linked_at_ms: a.linked_at_ms,
            device_registered: a.device_client_id.is_some(),
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
}

impl From<core::UnlinkOutcome> for UnlinkOutcome {
    fn from(o: core::UnlinkOutcome) -> Self {
        Self {
            revoked_at_provider: o.revoked_at_provider,
        }
    }
}

/// How the user is related to a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Relation {
    Myself,
    Child,
    AdultUnderProxy,
    Unknown,
}

impl From<core::Relation> for Relation {
    fn from(r: core::Relation) -> Self {
        match r {
            core::Relation::Myself => Self::Myself,
            core::Relation::Child => Self::Child,
            core::Relation::AdultUnderProxy => Self::AdultUnderProxy,
            core::Relation::Unknown => Self::Unknown,
        }
    }
}

/// One patient, as a family switcher shows them.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientContext {
    /// Pass to `switch_patient`.
    pub id: String,
    pub account_ids: Vec<String>,
    pub name: Option<String>,
    pub birth_date: Option<String>,
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
            birth_date: p.birth_date,
            relation: p.relation.into(),
            restricted: p.restricted,
            providers: p.providers,
            revoked: p.revoked,
        }
    }
}

// ---- sync and events -----------------------------------------------------------------------------------------

/// New, changed and deleted resources of one FHIR type in one sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TypeCounts {
    pub resource_type: String,
    pub new: i64,
    pub changed: i64,
    pub deleted: i64,
}

/// A query of a sync that did not complete (the next sync retries it).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncFailure {
    pub query: String,
    /// The patient did not grant this data: expected, not an error to show.
    pub not_granted: bool,
    pub reason: String,
}

/// What a sync did: enough for a "3 new results" notice.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    pub account_id: String,
    pub full_pass: bool,
    pub per_type: Vec<TypeCounts>,
    pub failures: Vec<SyncFailure>,
    /// New plus changed, over all types.
    pub updated: i64,
    pub resources_seen: i64,
    /// Resources the server returned for another patient: refused, never stored.
    pub refused: i64,
    pub documents_fetched: i64,
    pub duration_ms: i64,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        Self {
            updated: i64::from(r.updated()),
            account_id: r.account_id,
            full_pass: r.full_pass,
            per_type: r
                .per_type
                .into_iter()
                .map(|(resource_type, c)| TypeCounts {
                    resource_type,
                    new: c.new.into(),
                    changed: c.changed.into(),
                    deleted: c.deleted.into(),
                })
                .collect(),
            failures: r
                .failures
                .into_iter()
                .map(|f| SyncFailure {
                    query: f.query,
                    not_granted: f.not_granted,
                    reason: f.reason,
                })
                .collect(),
            resources_seen: count(r.resources_seen),
            refused: count(r.refused),
            documents_fetched: count(r.documents_fetched),
            duration_ms: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
        }
    }
}

/// Progress of a sync, after each page of each query.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    pub account_id: String,
    pub query: String,
    pub pages: i64,
    pub resources: i64,
    pub queries_done: i64,
    pub queries_total: i64,
}

impl From<core::SyncProgress> for SyncProgress {
    fn from(p: core::SyncProgress) -> Self {
        Self {
            account_id: p.account_id,
            query: p.query,
            pages: count(p.pages),
            resources: count(p.resources),
            queries_done: count(p.queries_done),
            queries_total: count(p.queries_total),
        }
    }
}

/// Why the SDK locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LockReason {
    /// No activity for the timeout.
    Idle,
    /// The app stayed in the background longer than the grace period.
    Background,
    /// `lock()` was called.
    Explicit,
}

impl From<core::LockReason> for LockReason {
    fn from(r: core::LockReason) -> Self {
        match r {
            core::LockReason::Idle => Self::Idle,
            core::LockReason::Background => Self::Background,
            core::LockReason::Explicit => Self::Explicit,
        }
    }
}

/// Something the app should know about, delivered to the `EventListener` (and the shells' Flow / AsyncStream).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Event {
    SyncProgress {
        progress: SyncProgress,
    },
    SyncFinished {
        report: SyncReport,
    },
    /// The idle lock fires in `remaining_ms` unless the user does something (`record_activity`).
    LockWarning {
        remaining_ms: i64,
    },
    /// The records are unreadable until `unlock()`.
    Locked {
        reason: LockReason,
    },
    Unlocked,
    /// The provider ended access to this account's record.
    AccessRevoked {
        account_id: String,
    },
    /// Access to this account can no longer be renewed; its record stays readable. Ask the user to link again.
    RelinkNeeded {
        account_id: String,
    },
}

/// Something the app should know about the device's own files (`ChartLink.take_store_notices`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum StoreNotice {
    /// The database was damaged: it was moved to `moved_to` and a fresh one started; the next sync fills it again.
    /// The copy is deleted by an unlink or a reset.
    DatabaseMovedAside { moved_to: String },
    /// `count` rows of an account were damaged: removed, and fetched again by its next sync.
    DamagedRows { account_id: String, count: u64 },
    /// An account entry of the secure store could not be read; the account was skipped.
    UnreadableAccountEntry { key: String },
}

impl From<core::StoreNotice> for StoreNotice {
    fn from(n: core::StoreNotice) -> Self {
        match n {
            core::StoreNotice::DatabaseMovedAside { moved_to } => Self::DatabaseMovedAside {
                moved_to: moved_to.to_string_lossy().into_owned(),
            },
            core::StoreNotice::DamagedRows { account_id, count } => Self::DamagedRows {
                account_id,
                count: count as u64,
            },
            core::StoreNotice::UnreadableAccountEntry { key } => {
                Self::UnreadableAccountEntry { key }
            }
        }
    }
}

impl From<core::Event> for Event {
    fn from(e: core::Event) -> Self {
        match e {
            core::Event::SyncProgress(p) => Self::SyncProgress { progress: p.into() },
            core::Event::SyncFinished(r) => Self::SyncFinished { report: r.into() },
            core::Event::LockWarning { remaining_ms } => Self::LockWarning { remaining_ms },
            core::Event::Locked(reason) => Self::Locked {
                reason: reason.into(),
            },
            core::Event::Unlocked => Self::Unlocked,
            core::Event::AccessRevoked { account_id } => Self::AccessRevoked { account_id },
            core::Event::RelinkNeeded { account_id } => Self::RelinkNeeded { account_id },
        }
    }
}

// ---- clinical records ----------------------------------------------------------------------------------------

/// How a result compares to its reference range, as the lab said (never computed here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Flag {
    Normal,
    High,
    Low,
    CriticalHigh,
    CriticalLow,
    Abnormal,
    /// The lab gave no interpretation.
    Unknown,
}

impl From<views::Flag> for Flag {
    fn from(f: views::Flag) -> Self {
        match f {
            views::Flag::Normal => Self::Normal,
            views::Flag::High => Self::High,
            views::Flag::Low => Self::Low,
            views::Flag::CriticalHigh => Self::CriticalHigh,
            views::Flag::CriticalLow => Self::CriticalLow,
            views::Flag::Abnormal => Self::Abnormal,
            views::Flag::Unknown => Self::Unknown,
        }
    }
}

/// A code in a code system (SNOMED CT, ICD-10-CM, LOINC), with its display when the server sent one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

impl From<views::CodeRef> for Coding {
    fn from(c: views::CodeRef) -> Self {
        Self {
            system: c.system,
            code: c.code,
            display: c.display,
        }
    }
}

/// One named part of a value measured together (systolic and diastolic blood pressure).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ValueComponent {
    pub name: String,
    pub value: f64,
    pub unit: Option<String>,
}

fn quantity_text(q: &Quantity) -> String {
    let mut text = format!("{}{}", q.comparator.as_deref().unwrap_or(""), q.value);
    if let Some(unit) = &q.unit {
        text.push(' ');
        text.push_str(unit);
    }
    text
}

/// (display text, number, unit, components) of an observation's value.
type ValueParts = (
    Option<String>,
    Option<f64>,
    Option<String>,
    Vec<ValueComponent>,
);

fn value_parts(value: Option<ObservationValue>) -> ValueParts {
    match value {
        None => (None, None, None, Vec::new()),
        Some(ObservationValue::Quantity(q)) => (
            Some(quantity_text(&q)),
            Some(q.value),
            q.unit.clone(),
            Vec::new(),
        ),
        Some(ObservationValue::Text(t)) => (Some(t), None, None, Vec::new()),
        Some(ObservationValue::Coded(c)) => (Some(c.label()), None, None, Vec::new()),
        Some(ObservationValue::Boolean(b)) => (
            Some(if b { "Yes" } else { "No" }.into()),
            None,
            None,
            Vec::new(),
        ),
        Some(ObservationValue::Components(parts)) => {
            let text = parts
                .iter()
                .map(|(name, q)| format!("{name} {}", quantity_text(q)))
                .collect::<Vec<_>>()
                .join(", ");
            let components = parts
                .into_iter()
                .map(|(name, q)| ValueComponent {
                    name,
                    value: q.value,
                    unit: q.unit,
                })
                .collect();
            (Some(text), None, None, components)
        }
    }
}

fn range_text(range: &Option<ReferenceRange>) -> Option<String> {
    let range = range.as_ref()?;
    if let Some(text) = &range.text {
        return Some(text.clone());
    }
    let unit = range
        .high
        .as_ref()
        .or(range.low.as_ref())
        .and_then(|q| q.unit.clone())
        .map(|u| format!(" {u}"))
        .unwrap_or_default();
    match (&range.low, &range.high) {
        (Some(low), Some(high)) => Some(format!("{}–{}{unit}", low.value, high.value)),
        (Some(low), None) => Some(format!(">= {}{unit}", low.value)),
        (None, Some(high)) => Some(format!("<= {}{unit}", high.value)),
        (None, None) => None,
    }
}

fn code_of(code: &Option<views::CodeRef>) -> Option<String> {
    code.as_ref().and_then(|c| c.code.clone())
}

/// A lab result.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LabResult {
    pub id: String,
    pub name: String,
    /// The LOINC code when there is one (pass it to `lab_trend`).
    pub code: Option<String>,
    /// The value as the lab wrote it ("7.2 %", "<5 mg/L", "Negative").
    pub value_text: Option<String>,
    /// The number, for numeric results.
    pub numeric_value: Option<f64>,
    pub unit: Option<String>,
    /// The reference range ("4.0–5.6 %").
    pub range_text: Option<String>,
    pub flag: Flag,
    pub date: Option<String>,
    /// "final", "amended", "preliminary", ...
    pub status: String,
    /// The report (DiagnosticReport) the result belongs to.
    pub report_id: Option<String>,
    /// The provider it came from (its FHIR base).
    pub source: Option<String>,
}

impl From<views::LabResult> for LabResult {
    fn from(r: views::LabResult) -> Self {
        let range_text = range_text(&r.range);
        let code = code_of(&r.code);
        let (value_text, numeric_value, unit, _) = value_parts(r.value);
        Self {
            id: r.id,
            name: r.name,
            code,
            value_text,
            numeric_value,
            unit,
            range_text,
            flag: r.flag.into(),
            date: date(r.date),
            status: r.status,
            report_id: r.report_id,
            source: r.source,
        }
    }
}

/// A vital sign. Blood pressure comes as `components` (systolic, diastolic) with `value_text` "Systolic 120
/// mmHg, Diastolic 80 mmHg".
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct VitalSign {
    pub id: String,
    pub name: String,
    pub code: Option<String>,
    pub value_text: Option<String>,
    pub numeric_value: Option<f64>,
    pub unit: Option<String>,
    pub components: Vec<ValueComponent>,
    pub flag: Flag,
    pub date: Option<String>,
    pub status: String,
    pub source: Option<String>,
}

impl From<views::VitalSign> for VitalSign {
    fn from(v: views::VitalSign) -> Self {
        let code = code_of(&v.code);
        let (value_text, numeric_value, unit, components) = value_parts(v.value);
        Self {
            id: v.id,
            name: v.name,
            code,
            value_text,
            numeric_value,
            unit,
            components,
            flag: v.flag.into(),
            date: date(v.date),
            status: v.status,
            source: v.source,
        }
    }
}

/// One point of a `LabTrend`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendPoint {
    pub date: String,
    /// The earliest instant the date covers, in Unix seconds (for the x axis).
    pub epoch_seconds: i64,
    pub value: f64,
    pub unit: Option<String>,
    pub flag: Flag,
}

/// One test over time, for a chart: points oldest first.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LabTrend {
    pub code: String,
    /// The latest result's name.
    pub name: String,
    /// The latest point's unit (each point carries its own: providers may differ).
    pub unit: Option<String>,
    pub points: Vec<TrendPoint>,
    pub range_text: Option<String>,
    /// The reference range's bounds, for a band behind the line.
    pub range_low: Option<f64>,
    pub range_high: Option<f64>,
}

impl From<views::LabTrend> for LabTrend {
    fn from(t: views::LabTrend) -> Self {
        Self {
            range_text: range_text(&t.range),
            range_low: t
                .range
                .as_ref()
                .and_then(|r| r.low.as_ref())
                .map(|q| q.value),
            range_high: t
                .range
                .as_ref()
                .and_then(|r| r.high.as_ref())
                .map(|q| q.value),
            code: t.code,
            name: t.name,
            unit: t.unit,
            points: t
                .points
                .into_iter()
                .map(|p| TrendPoint {
                    epoch_seconds: p.date.sort_key(),
                    date: p.date.to_string(),
                    value: p.value,
                    unit: p.unit,
                    flag: p.flag.into(),
                })
                .collect(),
        }
    }
}

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Allergy {
    pub id: String,
    pub substance: String,
    pub reactions: Vec<String>,
    /// "mild", "moderate", "severe".
    pub severity: Option<String>,
    /// "low", "high", "unable-to-assess".
    pub criticality: Option<String>,
    /// "active", "inactive", "resolved".
    pub clinical_status: Option<String>,
    pub recorded: Option<String>,
    pub source: Option<String>,
}

impl From<views::Allergy> for Allergy {
    fn from(a: views::Allergy) -> Self {
        Self {
            id: a.id,
            substance: a.substance,
            reactions: a.reactions,
            severity: a.severity,
            criticality: a.criticality,
            clinical_status: a.clinical_status,
            recorded: date(a.recorded),
            source: a.source,
        }
    }
}

/// A prescription.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Medication {
    pub id: String,
    pub name: String,
    /// The dosage instructions ("1 tablet by mouth twice daily").
    pub dosage: Option<String>,
    /// "active", "completed", "stopped", ...
    pub status: String,
    pub prescriber: Option<String>,
    pub authored: Option<String>,
    /// When the order runs out (may be in the future for an active order).
    pub ended: Option<String>,
    pub source: Option<String>,
}

impl From<views::Medication> for Medication {
    fn from(m: views::Medication) -> Self {
        Self {
            id: m.id,
            name: m.name,
            dosage: m.dosage,
            status: m.status,
            prescriber: m.prescriber,
            authored: date(m.authored),
            ended: date(m.ended),
            source: m.source,
        }
    }
}

/// A vaccination.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Immunization {
    pub id: String,
    pub vaccine: String,
    pub date: Option<String>,
    /// "completed", "not-done", "entered-in-error".
    pub status: String,
    pub lot: Option<String>,
    pub source: Option<String>,
}

impl From<views::Immunization> for Immunization {
    fn from(i: views::Immunization) -> Self {
        Self {
            id: i.id,
            vaccine: i.vaccine,
            date: date(i.date),
            status: i.status,
            lot: i.lot,
            source: i.source,
        }
    }
}

/// A problem or diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Problem {
    pub id: String,
    pub name: String,
    /// Its codes (typically SNOMED CT and ICD-10-CM).
    pub codes: Vec<Coding>,
    /// "active", "resolved", "remission", ...
    pub clinical_status: Option<String>,
    pub onset: Option<String>,
    pub recorded: Option<String>,
    pub resolved: Option<String>,
    pub category: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Problem> for Problem {
    fn from(p: views::Problem) -> Self {
        Self {
            id: p.id,
            name: p.name,
            codes: p.codes.into_iter().map(Into::into).collect(),
            clinical_status: p.clinical_status,
            onset: date(p.onset),
            recorded: date(p.recorded),
            resolved: date(p.resolved),
            category: p.category,
            source: p.source,
        }
    }
}

/// A visit.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Visit {
    pub id: String,
    /// "Office visit", "Ambulatory visit", ...
    pub kind: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub reason: Option<String>,
    /// The documents written for it (after-visit summary, notes): ids for `document_content`.
    pub summary_document_ids: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Visit> for Visit {
    fn from(v: views::Visit) -> Self {
        Self {
            id: v.id,
            kind: v.kind,
            start: date(v.start),
            end: date(v.end),
            provider: v.provider,
            location: v.location_or_org,
            reason: v.reason,
            summary_document_ids: v.summary_document_ids,
            source: v.source,
        }
    }
}

/// A clinical document (note, after-visit summary); its content comes from `document_content`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub date: Option<String>,
    /// "Progress note", "Discharge summary", ...
    pub kind: Option<String>,
    pub content_type: Option<String>,
    /// Whether there is content to fetch.
    pub has_content: bool,
    pub visit_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::Document> for Document {
    fn from(d: views::Document) -> Self {
        Self {
            id: d.id,
            title: d.title,
            date: date(d.date),
            kind: d.kind,
            content_type: d.content_type,
            has_content: d.binary_id.is_some(),
            visit_id: d.visit_id,
            source: d.source,
        }
    }
}

/// The content of a document, ready to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DocumentContent {
    Text {
        text: String,
    },
    Html {
        html: String,
    },
    Pdf {
        bytes: Vec<u8>,
    },
    Other {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl From<views::DocumentContent> for DocumentContent {
    fn from(c: views::DocumentContent) -> Self {
        match c {
            views::DocumentContent::Text(text) => Self::Text { text },
            views::DocumentContent::Html(html) => Self::Html { html },
            views::DocumentContent::Pdf(bytes) => Self::Pdf { bytes },
            views::DocumentContent::Other {
                content_type,
                bytes,
            } => Self::Other {
                content_type,
                bytes,
            },
        }
    }
}

/// An appointment.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Appointment {
    pub id: String,
    pub start: Option<String>,
    pub end: Option<String>,
    /// "booked", "fulfilled", "cancelled", ...
    pub status: String,
    pub description: Option<String>,
    /// The clinicians and places, by name.
    pub with_whom: Vec<String>,
    pub service: Option<String>,
    pub source: Option<String>,
}

impl From<views::Appointment> for Appointment {
    fn from(a: views::Appointment) -> Self {
        Self {
            id: a.id,
            start: date(a.start),
            end: date(a.end),
            status: a.status,
            description: a.description,
            with_whom: a.with_whom,
            service: a.service,
            source: a.source,
        }
    }
}

/// Who the record is about.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Demographics {
    pub id: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    /// The medical record number.
    pub mrn: Option<String>,
    pub source: Option<String>,
}

impl From<views::Demographics> for Demographics {
    fn from(d: views::Demographics) -> Self {
        Self {
            id: d.id,
            name: d.name,
            birth_date: date(d.birth_date),
            gender: d.gender,
            phone: d.phone,
            email: d.email,
            address: d.address,
            mrn: d.mrn,
            source: d.source,
        }
    }
}

/// The active patient's summary: what the portal's home page shows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct HealthSummary {
    pub patient: Option<Demographics>,
    pub allergies: Vec<Allergy>,
    /// Active medications.
    pub medications: Vec<Medication>,
    pub immunizations: Vec<Immunization>,
    /// Active problems.
    pub problems: Vec<Problem>,
    /// The newest result of each test, newest first.
    pub latest_results: Vec<LabResult>,
}

/// An observation that is neither a lab result nor a vital sign (a survey answer, an exam finding, smoking
/// status, an imaging measurement), or a result of a report.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Observation {
    pub id: String,
    pub name: String,
    pub code: Option<String>,
    pub value_text: Option<String>,
    pub numeric_value: Option<f64>,
    pub unit: Option<String>,
    pub components: Vec<ValueComponent>,
    pub range_text: Option<String>,
    pub flag: Flag,
    pub date: Option<String>,
    pub status: String,
    /// The category codes ("survey", "social-history", "laboratory", ...).
    pub category: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Observation> for Observation {
    fn from(o: views::Observation) -> Self {
        let code = code_of(&o.code);
        let range_text = range_text(&o.range);
        let (value_text, numeric_value, unit, components) = value_parts(o.value);
        Self {
            id: o.id,
            name: o.name,
            code,
            value_text,
            numeric_value,
            unit,
            components,
            range_text,
            flag: o.flag.into(),
            date: date(o.date),
            status: o.status,
            category: o.category,
            source: o.source,
        }
    }
}

/// A procedure (surgery, screening, counselling, therapy).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Procedure {
    pub id: String,
    pub name: String,
    pub codes: Vec<Coding>,
    /// "completed", "in-progress", "not-done", ...
    pub status: String,
    pub performed: Option<String>,
    pub performed_end: Option<String>,
    pub performer: Option<String>,
    pub location: Option<String>,
    pub reason: Option<String>,
    pub body_site: Option<String>,
    pub outcome: Option<String>,
    pub visit_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::Procedure> for Procedure {
    fn from(p: views::Procedure) -> Self {
        Self {
            id: p.id,
            name: p.name,
            codes: all(p.codes),
            status: p.status,
            performed: date(p.performed),
            performed_end: date(p.performed_end),
            performer: p.performer,
            location: p.location,
            reason: p.reason,
            body_site: p.body_site,
            outcome: p.outcome,
            visit_id: p.visit_id,
            source: p.source,
        }
    }
}

/// A report (lab panel, imaging, pathology) with the results it lists that are on the device.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DiagnosticReport {
    pub id: String,
    pub name: String,
    pub code: Option<String>,
    pub status: String,
    pub category: Vec<String>,
    pub date: Option<String>,
    pub issued: Option<String>,
    pub performer: Option<String>,
    pub conclusion: Option<String>,
    /// Every result it lists, by id (some may not be on the device: see `results`).
    pub result_ids: Vec<String>,
    pub results: Vec<Observation>,
    pub visit_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::DiagnosticReport> for DiagnosticReport {
    fn from(r: views::DiagnosticReport) -> Self {
        Self {
            id: r.id,
            name: r.name,
            code: code_of(&r.code),
            status: r.status,
            category: r.category,
            date: date(r.date),
            issued: date(r.issued),
            performer: r.performer,
            conclusion: r.conclusion,
            result_ids: r.result_ids,
            results: all(r.results),
            visit_id: r.visit_id,
            source: r.source,
        }
    }
}

/// A care plan.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CarePlan {
    pub id: String,
    pub title: String,
    pub status: String,
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub description: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub activities: Vec<String>,
    pub addresses: Vec<String>,
    pub source: Option<String>,
}

impl From<views::CarePlan> for CarePlan {
    fn from(p: views::CarePlan) -> Self {
        Self {
            id: p.id,
            title: p.title,
            status: p.status,
            intent: p.intent,
            categories: p.categories,
            description: p.description,
            start: date(p.start),
            end: date(p.end),
            activities: p.activities,
            addresses: p.addresses,
            source: p.source,
        }
    }
}

/// A goal.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Goal {
    pub id: String,
    pub description: String,
    pub lifecycle_status: String,
    pub achievement: Option<String>,
    pub start: Option<String>,
    pub due: Option<String>,
    pub targets: Vec<String>,
    pub addresses: Vec<String>,
    pub source: Option<String>,
}

impl From<views::Goal> for Goal {
    fn from(g: views::Goal) -> Self {
        Self {
            id: g.id,
            description: g.description,
            lifecycle_status: g.lifecycle_status,
            achievement: g.achievement,
            start: date(g.start),
            due: date(g.due),
            targets: g.targets,
            addresses: g.addresses,
            source: g.source,
        }
    }
}

/// One member of a care team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CareTeamMember {
    pub name: String,
    pub role: Option<String>,
}

impl From<views::CareTeamMember> for CareTeamMember {
    fn from(m: views::CareTeamMember) -> Self {
        Self {
            name: m.name,
            role: m.role,
        }
    }
}

/// A care team.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CareTeam {
    pub id: String,
    pub name: String,
    pub status: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub members: Vec<CareTeamMember>,
    pub managing_organizations: Vec<String>,
    pub source: Option<String>,
}

impl From<views::CareTeam> for CareTeam {
    fn from(t: views::CareTeam) -> Self {
        Self {
            id: t.id,
            name: t.name,
            status: t.status,
            start: date(t.start),
            end: date(t.end),
            members: all(t.members),
            managing_organizations: t.managing_organizations,
            source: t.source,
        }
    }
}

/// An implant or other device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub kind: Option<String>,
    pub status: String,
    /// The unique device identifier (human-readable form when given).
    pub udi: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub lot_number: Option<String>,
    pub manufactured: Option<String>,
    pub expires: Option<String>,
    pub source: Option<String>,
}

impl From<views::Device> for Device {
    fn from(d: views::Device) -> Self {
        Self {
            id: d.id,
            name: d.name,
            kind: d.kind,
            status: d.status,
            udi: d.udi,
            manufacturer: d.manufacturer,
            model: d.model,
            serial_number: d.serial_number,
            lot_number: d.lot_number,
            manufactured: date(d.manufactured),
            expires: date(d.expires),
            source: d.source,
        }
    }
}

/// An order or referral.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceRequest {
    pub id: String,
    pub name: String,
    pub status: String,
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub authored: Option<String>,
    pub occurrence: Option<String>,
    pub requester: Option<String>,
    pub performer: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
}

impl From<views::ServiceRequest> for ServiceRequest {
    fn from(r: views::ServiceRequest) -> Self {
        Self {
            id: r.id,
            name: r.name,
            status: r.status,
            intent: r.intent,
            categories: r.categories,
            authored: date(r.authored),
            occurrence: date(r.occurrence),
            requester: r.requester,
            performer: r.performer,
            reason: r.reason,
            source: r.source,
        }
    }
}

/// An insurance coverage.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Coverage {
    pub id: String,
    pub payer: String,
    pub kind: Option<String>,
    pub status: String,
    pub plan: Option<String>,
    pub member_id: Option<String>,
    pub relationship: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub source: Option<String>,
}

impl From<views::Coverage> for Coverage {
    fn from(c: views::Coverage) -> Self {
        Self {
            id: c.id,
            payer: c.payer,
            kind: c.kind,
            status: c.status,
            plan: c.plan,
            member_id: c.member_id,
            relationship: c.relationship,
            start: date(c.start),
            end: date(c.end),
            source: c.source,
        }
    }
}

/// A medication handed out by a pharmacy.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct MedicationDispense {
    pub id: String,
    pub name: String,
    pub status: String,
    pub quantity: Option<String>,
    pub days_supply: Option<f64>,
    pub dosage: Option<String>,
    pub prepared: Option<String>,
    pub handed_over: Option<String>,
    pub prescription_id: Option<String>,
    pub source: Option<String>,
}

impl From<views::MedicationDispense> for MedicationDispense {
    fn from(m: views::MedicationDispense) -> Self {
        Self {
            id: m.id,
            name: m.name,
            status: m.status,
            quantity: m.quantity,
            days_supply: m.days_supply,
            dosage: m.dosage,
            prepared: date(m.prepared),
            handed_over: date(m.handed_over),
            prescription_id: m.prescription_id,
            source: m.source,
        }
    }
}

/// A medication the patient takes or took, as recorded (older servers).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MedicationStatement {
    pub id: String,
    pub name: String,
    pub status: String,
    pub dosage: Option<String>,
    pub taken: Option<String>,
    pub ended: Option<String>,
    pub asserted: Option<String>,
    pub information_source: Option<String>,
    pub reason: Option<String>,
    pub source: Option<String>,
}

impl From<views::MedicationStatement> for MedicationStatement {
    fn from(m: views::MedicationStatement) -> Self {
        Self {
            id: m.id,
            name: m.name,
            status: m.status,
            dosage: m.dosage,
            taken: date(m.taken),
            ended: date(m.ended),
            asserted: date(m.asserted),
            information_source: m.information_source,
            reason: m.reason,
            source: m.source,
        }
    }
}

/// One answered question.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuestionAnswer {
    pub question: String,
    pub answer: String,
}

impl From<views::QuestionAnswer> for QuestionAnswer {
    fn from(a: views::QuestionAnswer) -> Self {
        Self {
            question: a.question,
            answer: a.answer,
        }
    }
}

/// An answered questionnaire.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuestionnaireResponse {
    pub id: String,
    pub title: String,
    pub status: String,
    pub authored: Option<String>,
    pub author: Option<String>,
    pub answers: Vec<QuestionAnswer>,
    pub source: Option<String>,
}

impl From<views::QuestionnaireResponse> for QuestionnaireResponse {
    fn from(q: views::QuestionnaireResponse) -> Self {
        Self {
            id: q.id,
            title: q.title,
            status: q.status,
            authored: date(q.authored),
            author: q.author,
            answers: all(q.answers),
            source: q.source,
        }
    }
}

pub(crate) fn all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

impl From<core::HealthSummary> for HealthSummary {
    fn from(s: core::HealthSummary) -> Self {
        Self {
            patient: s.patient.map(Into::into),
            allergies: all(s.allergies),
            medications: all(s.medications),
            immunizations: all(s.immunizations),
            problems: all(s.problems),
            latest_results: all(s.latest_results),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(value: f64, unit: &str) -> Quantity {
        Quantity {
            value,
            unit: Some(unit.into()),
            comparator: None,
        }
    }

    #[test]
    fn values_become_text_number_and_unit() {
        let (text, number, unit, parts) =
            value_parts(Some(ObservationValue::Quantity(q(7.2, "%"))));
        assert_eq!(
            (text.as_deref(), number, unit.as_deref()),
            (Some("7.2 %"), Some(7.2), Some("%"))
        );
        assert!(parts.is_empty());
        let below = Quantity {
            comparator: Some("<".into()),
            ..q(5.0, "mg/L")
        };
        assert_eq!(
            value_parts(Some(ObservationValue::Quantity(below)))
                .0
                .as_deref(),
            Some("<5 mg/L")
        );
        let bp = ObservationValue::Components(vec![
            ("Systolic".into(), q(120.0, "mmHg")),
            ("Diastolic".into(), q(80.0, "mmHg")),
        ]);
        let (text, number, _, parts) = value_parts(Some(bp));
        assert_eq!(
            text.as_deref(),
            Some("Systolic 120 mmHg, Diastolic 80 mmHg")
        );
        assert_eq!((number, parts.len()), (None, 2));
    }

    #[test]
    fn ranges_read_as_text() {
        let range = |low, high, text: Option<&str>| {
            Some(ReferenceRange {
                low,
                high,
                text: text.map(Into::into),
            })
        };
        assert_eq!(
            range_text(&range(Some(q(4.0, "%")), Some(q(5.6, "%")), None)).as_deref(),
            Some("4–5.6 %")
        );
        assert_eq!(
            range_text(&range(None, Some(q(200.0, "mg/dL")), None)).as_deref(),
            Some("<= 200 mg/dL")
        );
        assert_eq!(
            range_text(&range(None, None, Some("negative"))).as_deref(),
            Some("negative")
        );
        assert_eq!(range_text(&None), None);
    }

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
        assert_eq!(core.revocation, core::RevocationPolicy::PurgeNow);
        assert_eq!(core.wanted.len(), core::DataCategory::ALL.len());
        for bad in [config(0, 0, 0), config(600, -1, 0), config(i64::MAX, 0, 0)] {
            assert!(matches!(bad.into_core(), Err(core::Error::InvalidInput(_))));
        }
    }
}
