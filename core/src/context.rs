//! Patient contexts: whose record a link opens and how the user is related to them. One user may hold several
//! links at one provider (themselves, a child, a parent under proxy) — each is its own context — and one person may
//! be linked at several providers, which merge into one context whose records keep their source.
//!
//! The relation comes from the verified `fhirUser` (`Patient/…` is the user themselves, `RelatedPerson/…` a proxy)
//! and the synced Patient's birth date (under 18: a child; 13 to 17 seen by a parent: restricted, because the
//! provider withholds confidential items).

use serde_json::Value;

use crate::account::{AccountStatus, LinkedAccount};

/// How the user is related to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The user's own record.
    Myself,
    /// A child the user is a parent or guardian of.
    Child,
    /// An adult whose record the user sees under a proxy authorization.
    AdultUnderProxy,
    /// Not known yet (no fhirUser, or the Patient has not been synced).
    Unknown,
}

/// One patient, as the app shows it in a family switcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientContext {
    /// The context's id (the id of its first linked account).
    pub id: String,
    /// Every linked account (one per provider) holding this patient's record.
    pub account_ids: Vec<String>,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub relation: Relation,
    /// A 13 to 17 year old's record seen by a parent: the provider withholds confidential items. Shown as
    /// restricted, not as an error.
    pub restricted: bool,
    /// The FHIR bases of the providers.
    pub providers: Vec<String>,
    /// The user's OpenID subject: contexts of one user group together.
    pub user_subject: Option<String>,
    /// The provider ended access (the data may be kept read-only until the user confirms).
    pub revoked: bool,
}

/// The `YYYY-MM-DD` date of a day count since 1970-01-01 (proleptic Gregorian, UTC).
pub fn date_from_unix_days(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Whole years between a `YYYY-MM-DD` birth date and `today` (`YYYY-MM-DD`).
pub fn age(birth_date: &str, today: &str) -> Option<i32> {
    let parse = |s: &str| -> Option<(i32, u32, u32)> {
        let mut it = s.get(..10)?.split('-');
        Some((
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
            it.next()?.parse().ok()?,
        ))
    };
    let (by, bm, bd) = parse(birth_date)?;
    let (ty, tm, td) = parse(today)?;
    Some(ty - by - i32::from((tm, td) < (bm, bd)))
}

/// The context of one account, from the account and its synced Patient resource (if any).
pub fn for_account(
    account: &LinkedAccount,
    patient: Option<&Value>,
    today: &str,
) -> PatientContext {
    let name = patient.and_then(display_name);
    let birth_date = patient.and_then(|p| p["birthDate"].as_str().map(str::to_owned));
    let user = account.fhir_user.as_deref().unwrap_or("");
    let is_self = user.contains("/Patient/")
        && user.ends_with(&format!("/Patient/{}", account.patient_id))
        || user == format!("Patient/{}", account.patient_id);
    let years = birth_date.as_deref().and_then(|b| age(b, today));
    let relation = if is_self {
        Relation::Myself
    } else if user.contains("RelatedPerson/") {
        match years {
            Some(y) if y < 18 => Relation::Child,
            Some(_) => Relation::AdultUnderProxy,
            None => Relation::Unknown,
        }
    } else {
        Relation::Unknown
    };
    PatientContext {
        id: account.id.clone(),
        account_ids: vec![account.id.clone()],
        name,
        birth_date,
        relation,
        restricted: relation == Relation::Child && years.is_some_and(|y| (13..=17).contains(&y)),
        providers: vec![account.server.fhir_base.to_string()],
        user_subject: account.user_subject.clone(),
        revoked: account.status == AccountStatus::Revoked,
    }
}

/// "Given Family" from a Patient's official (or first) name.
pub fn display_name(patient: &Value) -> Option<String> {
    let names = patient["name"].as_array()?;
    let n = names
        .iter()
        .find(|n| n["use"] == "official")
        .or_else(|| names.first())?;
    if let Some(t) = n["text"].as_str().filter(|t| !t.trim().is_empty()) {
        return Some(t.trim().to_owned());
    }
    let given: Vec<&str> = n["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let full = format!("{} {}", given.join(" "), n["family"].as_str().unwrap_or(""))
        .trim()
        .to_owned();
    (!full.is_empty()).then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn days_become_dates() {
        assert_eq!(date_from_unix_days(0), "1970-01-01");
        assert_eq!(date_from_unix_days(20_514), "2026-03-02");
        assert_eq!(date_from_unix_days(-1), "1969-12-31");
        assert_eq!(date_from_unix_days(11_016), "2000-02-29");
    }

    #[test]
    fn ages_count_birthdays() {
        assert_eq!(age("2011-06-15", "2026-06-14"), Some(14));
        assert_eq!(age("2011-06-15", "2026-06-15"), Some(15));
        assert_eq!(age("garbage", "2026-06-15"), None);
    }

    #[test]
    fn names_prefer_official_and_text() {
        assert_eq!(display_name(&json!({"name": [{"use": "nickname", "given": ["Bo"]}, {"use": "official", "given": ["Robert", "J"], "family": "Smith"}]})).as_deref(), Some("Robert J Smith"));
        assert_eq!(
            display_name(&json!({"name": [{"text": " Wei Chen "}]})).as_deref(),
            Some("Wei Chen")
        );
        assert_eq!(display_name(&json!({"name": "odd"})), None);
    }
}
