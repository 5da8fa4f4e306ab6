//! The reads of every list kind, from one table: the whole list (`allergies()`), or a page of it within a date
//! range (`allergies(RecordQuery(from = "2024", limit = 50))`, the next page `after` the last record's id). Each
//! list is one line of core's `record_lists!` table, from which `pages!` generates its read (and `chart_record!` its
//! case of `ChartRecord`, what `record(type, id)` answers). Observations are one record with three lists (lab
//! results, vital signs, the others), in the `reads!` table.

use chartlink_core as core;
use chartlink_core::views;

use crate::records::{self, *};
use crate::runtime::run_blocking;
use crate::{ChartLink, ChartLinkError, Result};

/// Which part of a list to read. Every field is optional: `RecordQuery()` is the whole list.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct RecordQuery {
    /// Records dated on or after this FHIR date ("2024", "2024-06", "2024-06-01"), at its precision.
    #[uniffi(default = None)]
    pub from: Option<String>,
    /// Records dated on or before this FHIR date, at its precision ("2024" runs through 31 December). With either
    /// bound, undated records are left out.
    #[uniffi(default = None)]
    pub to: Option<String>,
    /// At most this many records (1 to 1000); null/nil: all that are left.
    #[uniffi(default = None)]
    pub limit: Option<i64>,
    /// The id of the last record of the previous page: this page starts after it (null/nil: the first page). A
    /// position by record, not by count: records a sync adds or removes meanwhile do not shift the pages. An id no
    /// longer in the list (the record is gone, or of another list or range) is refused with `InvalidInput`: read
    /// again from the first page. There is more while a page is full (`limit` records).
    #[uniffi(default = None)]
    pub after: Option<String>,
}

impl TryFrom<RecordQuery> for core::RecordQuery {
    type Error = ChartLinkError;

    fn try_from(q: RecordQuery) -> Result<Self> {
        let date = |text: Option<String>, which: &str| -> Result<Option<views::FhirDate>> {
            text.map(|t| {
                views::FhirDate::parse(&t).ok_or_else(|| {
                    ChartLinkError::InvalidInput(format!(
                        "`{which}` is not a FHIR date (2024, 2024-06 or 2024-06-01)"
                    ))
                })
            })
            .transpose()
        };
        let limit = q
            .limit
            .map(|l| {
                usize::try_from(l)
                    .ok()
                    .filter(|l| (1..=core::MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ChartLinkError::InvalidInput(format!(
                            "a page holds 1 to {} records",
                            core::MAX_PAGE
                        ))
                    })
            })
            .transpose()?;
        Ok(core::RecordQuery {
            from: date(q.from, "from")?,
            to: date(q.to, "to")?,
            limit,
            after: q.after,
        })
    }
}

/// The query a list read was given, in core's terms (none: the whole list). One function for every read: the
/// conversion is not copied into each.
#[inline(never)]
fn core_query(query: Option<RecordQuery>) -> Result<core::RecordQuery> {
    Ok(query
        .map(TryInto::try_into)
        .transpose()?
        .unwrap_or_default())
}

/// The reads of a list kind: `list => FFI record(|sdk, query| core's page)`, each with an optional `RecordQuery`
/// (none: the whole list).
macro_rules! reads {
    ($(
        $(#[$doc:meta])*
        $list:ident => $record:ty = |$sdk:ident, $q:ident| $core:expr;
    )*) => {
        #[uniffi::export]
        impl ChartLink {
            $(
                $(#[$doc])*
                ///
                /// With a `query`, only the records within its dates, from after its `after`, at most `limit`.
                #[uniffi::method(default(query = None))]
                pub async fn $list(&self, query: Option<RecordQuery>) -> Result<Vec<$record>> {
                    let $q = core_query(query)?;
                    let $sdk = self.inner.clone();
                    run_blocking(move || Ok(records::all($core?.records))).await
                }
            )*
        }
    };
}

/// The read of each list of core's `record_lists!` table (`read => View, CliCommand;`): `allergies(query)` answers
/// the FFI record `Allergy` from core's `views::Allergy`, through core's one read path (`ChartLink::records_page`).
macro_rules! pages {
    ($($(#[$doc:meta])* $list:ident => $view:ident, $cli:ident;)*) => {
        reads! {
            $(
                $(#[$doc])*
                $list => $view = |sdk, q| sdk.records_page::<views::$view>(&q);
            )*
        }
    };
}

reads! {
    /// Lab results, newest first.
    lab_results => Observation = |sdk, q| sdk.lab_results_page(&q);
    /// Vital signs, newest first.
    vital_signs => Observation = |sdk, q| sdk.vital_signs_page(&q);
    /// Observations that are neither lab results nor vital signs (surveys, exams, imaging, social history),
    /// newest first.
    observations => Observation = |sdk, q| sdk.observations_page(&q);
}

chartlink_core::record_lists!(pages);

/// [`ChartRecord`], a case per kind of core's `AnyRecord` (one per list of `record_lists!`, plus Observation and
/// Demographics).
macro_rules! chart_record {
    ($($(#[$doc:meta])* $list:ident => $view:ident, $cli:ident;)*) => {
        /// One record of any kind, typed: what `record(resourceType, id)` answers (a "what's new" row opens its
        /// record with it). A case per kind, holding the record as its list shows it.
        #[derive(Debug, Clone, PartialEq, uniffi::Enum)]
        pub enum ChartRecord {
            Observation { record: Observation },
            Demographics { record: Demographics },
            $($view { record: $view },)*
        }

        impl From<core::AnyRecord> for ChartRecord {
            fn from(r: core::AnyRecord) -> Self {
                match r {
                    core::AnyRecord::Observation(v) => Self::Observation { record: v.into() },
                    core::AnyRecord::Demographics(v) => Self::Demographics { record: v.into() },
                    $(core::AnyRecord::$view(v) => Self::$view { record: v.into() },)*
                }
            }
        }
    };
}

chartlink_core::record_lists!(chart_record);
