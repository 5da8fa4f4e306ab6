//! The records and enums an app shows, by topic: configuration ([`config`]), links and patients ([`account`]),
//! sync and events ([`sync`]), results ([`results`]), the chart ([`clinical`]), care and coverage ([`care`]),
//! dates ([`date`]) and the provider directory ([`directory`]).
//!
//! Shaped for the screen, not for FHIR: dates are [`FhirDate`]s (typed, sortable, at the server's precision: "2019-05"
//! stays a month), values come as display text plus the number and unit when there is one, counts and times are
//! signed 64-bit (Kotlin `Long`, Swift `Int64`; unsigned types would become `ULong`/`UInt64`).
//!
//! Core's plain enums (`Flag`, `Relation`, `LockReason`, `AccountStatus`, `RevocationPolicy`, `DataCategory`,
//! `EndpointStatus`) cross the FFI as they are, declared here with `#[uniffi::remote(Enum)]`: core stays free of
//! UniFFI, and a variant added in core without its line here fails to compile. Records stay mirrors: their FFI
//! shape differs from core's (display text, typed dates, no borrowed or internal fields).

mod account;
mod care;
mod clinical;
mod config;
mod date;
mod directory;
mod results;
mod sync;

pub use account::*;
pub use care::*;
pub use clinical::*;
pub use config::*;
pub use date::*;
pub use directory::*;
pub use results::*;
pub use sync::*;

// The core enums and records exported as they are (`#[uniffi::remote]`), for Rust users of this crate.
pub use chartlink_core::directory::{EndpointStatus, Provider, ProviderEndpoint};
pub use chartlink_core::views::Flag;
pub use chartlink_core::{
    AccountStatus, DataCategory, ExportFormat, LockReason, Relation, RevocationPolicy,
};

pub(crate) use date::{date, parse_date};

/// Declares an FFI record that mirrors one of core's, and its conversion from it, from one list of fields: each field
/// is moved as it is (`name: String`), converted by a function (`start: Option<FhirDate> => date`, `results:
/// Vec<Observation> => all`), or computed from the core value named after `as` (`code: Option<String> =
/// code_of(&r.code)`). A mirror is one declaration, its fields written once.
macro_rules! mirror {
    (
        $(#[$meta:meta])*
        pub struct $name:ident from $core:ty as $src:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $fty:ty $(=> $conv:path)? $(= $expr:expr)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty,)*
        }

        impl From<$core> for $name {
            fn from($src: $core) -> Self {
                Self {
                    $($field: mirror!(@value $src, $field $(=> $conv)? $(= $expr)?),)*
                }
            }
        }
    };
    (@value $src:ident, $field:ident) => {
        $src.$field
    };
    (@value $src:ident, $field:ident => $conv:path) => {
        $conv($src.$field)
    };
    (@value $src:ident, $field:ident = $expr:expr) => {
        $expr
    };
}
pub(crate) use mirror;

pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}
