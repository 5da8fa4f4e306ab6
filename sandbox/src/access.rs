//! The portal's proxy rules: who may see whose record, and how much of it.
//!
//! From the portal's published policy: a parent or guardian of a child 12 or under sees the whole record; of a
//! child 13 to 17, everything except items marked confidential (adolescent sensitive care); nothing once the child
//! turns 18. An adult's record is visible only under an explicit proxy authorization, which can be ended.

use time::Date;

use crate::clock::age_on;
use crate::store::{PersonRow, Store, StoreError};

/// How much of a record a user sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    /// Everything.
    Full,
    /// Everything except confidential items (a parent viewing a 13 to 17 year old's record).
    Restricted,
}

/// How the user is related to the record they open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// Their own record.
    Myself,
    /// A record they see as a proxy; `related_person_id` is their RelatedPerson in that record.
    Proxy {
        kind: String,
        related_person_id: String,
    },
}

/// A record a user may open, with the level and relation that apply today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessible {
    pub person: PersonRow,
    pub level: AccessLevel,
    pub relation: Relation,
}

/// The access level a proxy of `kind` has to a patient born on `birth_date`, on `today`.
pub fn proxy_level(kind: &str, birth_date: Date, today: Date) -> Option<AccessLevel> {
    match kind {
        "parent" => match age_on(birth_date, today) {
            ..=12 => Some(AccessLevel::Full),
            13..=17 => Some(AccessLevel::Restricted),
            _ => None,
        },
        "legal-proxy" => Some(AccessLevel::Full),
        _ => None,
    }
}

/// Every record `user` may open today: their own first, then each active proxy authorization that the age rules
/// still allow.
pub fn accessible(
    store: &Store,
    user: &PersonRow,
    today: Date,
) -> Result<Vec<Accessible>, StoreError> {
    let mut out = vec![Accessible {
        person: user.clone(),
        level: AccessLevel::Full,
        relation: Relation::Myself,
    }];
    for proxy in store.proxies_of(&user.patient_id)? {
        if proxy.ended_at.is_some() {
            continue;
        }
        let Some(person) = store.person(&proxy.patient_id)? else {
            continue;
        };
        let Some(birth) = parse_date(&person.birth_date) else {
            continue;
        };
        if let Some(level) = proxy_level(&proxy.kind, birth, today) {
            out.push(Accessible {
                person,
                level,
                relation: Relation::Proxy {
                    kind: proxy.kind,
                    related_person_id: proxy.related_person_id,
                },
            });
        }
    }
    Ok(out)
}

/// The access `username` has to `patient_id` today, if any.
pub fn access_of(
    store: &Store,
    username: &str,
    patient_id: &str,
    today: Date,
) -> Result<Option<Accessible>, StoreError> {
    let Some(user) = store.person_by_username(username)? else {
        return Ok(None);
    };
    Ok(accessible(store, &user, today)?
        .into_iter()
        .find(|a| a.person.patient_id == patient_id))
}

/// Parses a `YYYY-MM-DD` birth date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parent_access_follows_the_childs_age() {
        let today = date!(2026 - 11 - 22);
        assert_eq!(
            proxy_level("parent", date!(2017 - 01 - 01), today),
            Some(AccessLevel::Full)
        );
        assert_eq!(
            proxy_level("parent", date!(2013 - 11 - 23), today),
            Some(AccessLevel::Full),
            "still 12"
        );
        assert_eq!(
            proxy_level("parent", date!(2013 - 11 - 22), today),
            Some(AccessLevel::Restricted),
            "13 today"
        );
        assert_eq!(
            proxy_level("parent", date!(2008 - 11 - 23), today),
            Some(AccessLevel::Restricted),
            "still 17"
        );
        assert_eq!(
            proxy_level("parent", date!(2008 - 11 - 22), today),
            None,
            "18 today"
        );
    }

    #[test]
    fn legal_proxy_sees_an_adult_fully() {
        assert_eq!(
            proxy_level("legal-proxy", date!(1943 - 01 - 01), date!(2026 - 11 - 22)),
            Some(AccessLevel::Full)
        );
        assert_eq!(
            proxy_level("friend", date!(1943 - 01 - 01), date!(2026 - 11 - 22)),
            None
        );
    }
}
