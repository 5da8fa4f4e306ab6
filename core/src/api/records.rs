//! Reading the active patient's record: one generic path for every record kind, and the named reads over it.

use crate::*;

/// Which part of a list to read: a date range and a page (see [`ChartLink::records_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// Records whose date reaches this date or later (at its precision: "2024" is from 1 January 2024).
    pub from: Option<views::FhirDate>,
    /// Records whose date starts no later than the end of this date (at its precision: "2024-06" is through 30
    /// June). With either bound, undated records are left out.
    pub to: Option<views::FhirDate>,
    /// At most this many records (1 to [`MAX_PAGE`]); `None`: all that are left.
    pub limit: Option<usize>,
    /// The id of the last record of the previous page ([`Page::next_after`]): this page starts after it. `None`: the
    /// first page. A position by record, not by count, so records a sync adds or removes meanwhile do not shift the
    /// pages: no record already listed is skipped or shown twice (a new one above the start shows on the first page;
    /// where two providers of a merged patient use one id, the page starts after the first: a record may repeat,
    /// none is skipped).
    pub after: Option<String>,
}

/// The largest page [`ChartLink::records_page`] returns.
pub const MAX_PAGE: usize = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<V> {
    pub records: Vec<V>,
    /// Pass it back in [`RecordQuery::after`] for the next page (the last record's id); `None` on the last page.
    pub next_after: Option<String>,
    /// How many records the whole list (within the date range) has.
    pub total: usize,
}

/// A page's place in a list: which records the range keeps, and where the page starts and ends among them.
struct Cut {
    kept: Vec<bool>,
    start: usize,
    end: usize,
    total: usize,
}

/// Where a page of a list with these (date, id) keys, in its order, starts and ends once cut to the query's range.
fn cut(keys: &[(Option<&views::FhirDate>, &str)], query: &RecordQuery) -> Result<Cut> {
    if query.limit == Some(0) || query.limit.is_some_and(|l| l > MAX_PAGE) {
        return Err(Error::InvalidInput(format!(
            "a page holds 1 to {MAX_PAGE} records"
        )));
    }
    if let (Some(f), Some(t)) = (&query.from, &query.to)
        && t.end_key() <= f.sort_key()
    {
        return Err(Error::InvalidInput(
            "the date range ends before it starts".into(),
        ));
    }
    let kept: Vec<bool> = keys.iter().map(|(d, _)| in_range(*d, query)).collect();
    let ids: Vec<&str> = keys
        .iter()
        .zip(&kept)
        .filter(|(_, k)| **k)
        .map(|((_, id), _)| *id)
        .collect();
    let total = ids.len();
    let start = match &query.after {
        None => 0,
        Some(after) => ids
            .iter()
            .position(|id| id == after)
            .map(|i| i + 1)
            .ok_or_else(|| {
                Error::InvalidInput(
                    "the record this page starts after is not in the list (gone since, or of another list or \
                     range): read again from the first page"
                        .into(),
                )
            })?,
    };
    let end = query
        .limit
        .map_or(total, |l| start.saturating_add(l).min(total));
    Ok(Cut {
        kept,
        start,
        end,
        total,
    })
}

/// Whether a record's date overlaps the query's range (always, without one).
fn in_range(date: Option<&views::FhirDate>, q: &RecordQuery) -> bool {
    if q.from.is_none() && q.to.is_none() {
        return true;
    }
    let Some(date) = date else {
        return false;
    };
    q.from
        .as_ref()
        .is_none_or(|f| date.end_key() > f.sort_key())
        && q.to.as_ref().is_none_or(|t| date.sort_key() < t.end_key())
}

/// One account's share of a view's read ([`ChartLink::stored_for`]).
struct AccountResources {
    /// The provider, as records name it.
    label: String,
    resources: Vec<Value>,
    related: views::Related,
}

/// Core's read of each list of `record_lists!`: `sdk.allergies()`, the whole list of the active patient.
macro_rules! list_reads {
    ($($(#[$doc:meta])* $read:ident => $view:ident, $cli:ident;)*) => {
        impl ChartLink {
            $(
                $(#[$doc])*
                pub fn $read(&self) -> Result<Vec<views::$view>> {
                    self.records()
                }
            )*
        }
    };
}

crate::record_lists!(list_reads);

/// [`AnyRecord`] and [`ChartLink::record`], one variant and one arm per list of `record_lists!`.
macro_rules! any_record {
    ($($(#[$doc:meta])* $read:ident => $view:ident, $cli:ident;)*) => {
        /// One record of any kind, typed: what [`ChartLink::record`] answers. A variant per view (Observations are
        /// one, whichever list they show in).
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyRecord {
            Observation(views::Observation),
            Demographics(views::Demographics),
            $($view(views::$view),)*
        }

        impl ChartLink {
            /// One record of the active patient by its FHIR type and id, typed as its list shows it (linked to its
            /// related records, named, labelled with its provider): what a "what's new" row
            /// ([`NewRecord`](crate::NewRecord)'s `resource_type` and `id`) opens. `None` when none of the
            /// patient's providers holds it.
            ///
            /// Errors: [`Error::InvalidInput`] for a malformed type or id, or a type ChartLink shows no record of
            /// (a `Binary`: [`ChartLink::document_content`]; any type's FHIR: [`ChartLink::record_json`]);
            /// [`Error::Locked`].
            pub fn record(&self, resource_type: &str, id: &str) -> Result<Option<AnyRecord>> {
                use views::View as _;
                if !super::export::valid_reference(resource_type, id) {
                    return Err(Error::InvalidInput(
                        "not a FHIR resource type and id (e.g. Observation, lab-1)".into(),
                    ));
                }
                let is = |types: &[&str]| types.contains(&resource_type);
                if is(views::Observation::RESOURCE_TYPES) {
                    return Ok(self.record_of(resource_type, id)?.map(AnyRecord::Observation));
                }
                if is(views::Demographics::RESOURCE_TYPES) {
                    return Ok(self.record_of(resource_type, id)?.map(AnyRecord::Demographics));
                }
                $(
                    if is(views::$view::RESOURCE_TYPES) {
                        return Ok(self.record_of(resource_type, id)?.map(AnyRecord::$view));
                    }
                )*
                Err(Error::InvalidInput(format!(
                    "ChartLink shows no record of type {resource_type} (its FHIR: record_json)"
                )))
            }
        }
    };
}

crate::record_lists!(any_record);

impl ChartLink {
    /// Every record of one kind of the active patient (the one read path of every view): each of the patient's
    /// accounts is read for the kind's resource types, parsed, linked to the related records of the same account,
    /// labelled with its provider, and the whole list sorted by the kind's order. Works for any [`views::View`]:
    /// `sdk.records::<views::Procedure>()`.
    pub fn records<V: views::View>(&self) -> Result<Vec<V>> {
        let mut out = Vec::new();
        for account in self.stored_for(V::RESOURCE_TYPES, V::RELATED)? {
            out.extend(views::collect::<V>(
                &account.resources,
                &account.related,
                &account.label,
            ));
        }
        views::sort(&mut out);
        Ok(out)
    }

    /// What every view reads, per account of the active patient: the resources of `types` and of `related`, with
    /// the names of the doctors, places and drugs they point to filled in. Not generic, so it is built once rather
    /// than once per view (library size).
    fn stored_for(&self, types: &[&str], related: &[&str]) -> Result<Vec<AccountResources>> {
        let mut out = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            // The names of the doctors, places and drugs this provider's records point to, filled into every
            // reference that names no one before the view parses it.
            let mut referenced = Vec::new();
            for ty in views::REFERENCED_TYPES {
                referenced.extend(self.store.of_type(&keys, &id, ty).map_err(storage)?);
            }
            let names = views::Names::from_resources(&referenced);
            let of_type = |ty: &str| -> Result<Vec<Value>> {
                let mut list = self.store.of_type(&keys, &id, ty).map_err(storage)?;
                for r in &mut list {
                    names.fill(r, &label);
                }
                Ok(list)
            };
            let mut linked = views::Related::default();
            for ty in related {
                linked.insert(ty, of_type(ty)?);
            }
            let mut resources = Vec::new();
            for ty in types {
                resources.extend(of_type(ty)?);
            }
            out.push(AccountResources {
                label,
                resources,
                related: linked,
            });
        }
        Ok(out)
    }

    /// The record of kind `V` with this id (see [`ChartLink::record`]): `None` without reading the list when no
    /// provider of the active patient holds `resource_type`/`id`.
    fn record_of<V: views::View>(&self, resource_type: &str, id: &str) -> Result<Option<V>> {
        if !self.holds(resource_type, id)? {
            return Ok(None);
        }
        Ok(self.records::<V>()?.into_iter().find(|r| r.id() == id))
    }

    /// Whether a provider of the active patient holds this resource (one function for every kind: not built once
    /// per view).
    fn holds(&self, resource_type: &str, id: &str) -> Result<bool> {
        for (account, keys, _) in self.active_accounts()? {
            if self
                .store
                .get(&keys, &account, resource_type, id)
                .map_err(storage)?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One page of a record kind of the active patient, within a date range: the list [`ChartLink::records`] reads,
    /// in its order, cut to the range and the page. The next page starts after the last record's id
    /// ([`RecordQuery::after`]); an id that is no longer in the list (the record is gone, or the id is of another
    /// list or range) is refused with [`Error::InvalidInput`]: read again from the first page.
    pub fn records_page<V: views::View>(&self, query: &RecordQuery) -> Result<Page<V>> {
        self.records_page_where(query, |_| true)
    }

    /// A page of lab results (see [`ChartLink::records_page`]).
    pub fn lab_results_page(&self, query: &RecordQuery) -> Result<Page<views::Observation>> {
        self.records_page_where(query, |o: &views::Observation| {
            o.kind == views::ObservationKind::Lab
        })
    }

    /// A page of vital signs (see [`ChartLink::records_page`]).
    pub fn vital_signs_page(&self, query: &RecordQuery) -> Result<Page<views::Observation>> {
        self.records_page_where(query, |o: &views::Observation| {
            o.kind == views::ObservationKind::VitalSign
        })
    }

    /// A page of the other observations (see [`ChartLink::records_page`]).
    pub fn observations_page(&self, query: &RecordQuery) -> Result<Page<views::Observation>> {
        self.records_page_where(query, |o: &views::Observation| o.kind.is_other())
    }

    /// [`ChartLink::records_page`] over the records `keep` keeps.
    fn records_page_where<V: views::View>(
        &self,
        query: &RecordQuery,
        keep: impl Fn(&V) -> bool,
    ) -> Result<Page<V>> {
        let mut all = self.records::<V>()?;
        all.retain(keep);
        self.page_of(all, query)
    }

    /// One page of a list already read (in its order), as [`ChartLink::records_page`] cuts one (the CLI pages its
    /// listings with it).
    pub fn page_of<V: views::View>(&self, mut all: Vec<V>, query: &RecordQuery) -> Result<Page<V>> {
        // The whole list (every list read without a query): nothing to cut.
        if *query == RecordQuery::default() {
            return Ok(Page {
                total: all.len(),
                records: all,
                next_after: None,
            });
        }
        // The work runs on the records' dates and ids, in one function for every kind of record (a copy per record
        // type would weigh on the mobile library); only the cut is generic.
        let keys: Vec<(Option<&views::FhirDate>, &str)> =
            all.iter().map(|r| (r.date(), r.id())).collect();
        let cut = cut(&keys, query)?;
        let mut keep = cut.kept.iter();
        all.retain(|_| keep.next().copied().unwrap_or(false));
        let records: Vec<V> = all.drain(cut.start..cut.end).collect();
        let next_after = (cut.end < cut.total)
            .then(|| records.last().map(|r| r.id().to_owned()))
            .flatten();
        Ok(Page {
            records,
            next_after,
            total: cut.total,
        })
    }

    /// Every FHIR resource of a type of the active patient, as JSON.
    pub fn resources_of_active(&self, resource_type: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for (id, keys, _) in self.active_accounts()? {
            out.extend(
                self.store
                    .of_type(&keys, &id, resource_type)
                    .map_err(storage)?,
            );
        }
        Ok(out)
    }

    /// Every stored resource of a type for one account, as FHIR JSON (decrypted).
    pub fn resources(&self, account_id: &str, resource_type: &str) -> Result<Vec<Value>> {
        self.guard()?;
        let keys = self.account_keys(account_id)?;
        self.store
            .of_type(&keys, account_id, resource_type)
            .map_err(storage)
    }

    /// The active patient's Observations of the kinds `keep` keeps, newest first.
    fn observations_where(
        &self,
        keep: impl Fn(&views::Observation) -> bool,
    ) -> Result<Vec<views::Observation>> {
        let mut all: Vec<views::Observation> = self.records()?;
        all.retain(keep);
        Ok(all)
    }

    /// Lab results of the active patient, newest first, each with the report it belongs to.
    pub fn lab_results(&self) -> Result<Vec<views::LabResult>> {
        self.observations_where(|o| o.kind == views::ObservationKind::Lab)
    }

    /// One test over time (by LOINC code), for a graph.
    pub fn lab_trend(&self, code: &str) -> Result<Option<views::LabTrend>> {
        let mut results = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            // The results' small sealed projections; when one does not decode (records synced by an older
            // release, damage), the account's results of that code are parsed whole.
            let briefs = self
                .store
                .briefs_by_code(&keys, &id, code)
                .map_err(storage)?;
            let full = || {
                self.store
                    .by_code(&keys, &id, "Observation", code)
                    .map_err(storage)
            };
            for mut r in views::results_from_briefs(&briefs, full)? {
                r.source = Some(label.clone());
                results.push(r);
            }
        }
        Ok(views::lab_trend(&results, code))
    }

    /// Vital signs of the active patient, newest first.
    pub fn vital_signs(&self) -> Result<Vec<views::VitalSign>> {
        self.observations_where(|o| o.kind == views::ObservationKind::VitalSign)
    }

    /// Observations of the active patient that are neither lab results nor vital signs (surveys, exams,
    /// imaging, social history, ...), newest first.
    pub fn observations(&self) -> Result<Vec<views::Observation>> {
        self.observations_where(|o| o.kind.is_other())
    }

    /// Social history of the active patient (smoking status, alcohol use, ...), whichever Observation category
    /// the provider files it under, newest first.
    pub fn social_history(&self) -> Result<Vec<views::Observation>> {
        // Social history filed under laboratory (or uncategorised) shows as a lab result too: included.
        self.observations_where(|o| {
            o.kind != views::ObservationKind::VitalSign && o.is_social_history()
        })
    }

    /// The content of a document of the active patient (downloaded during sync).
    pub fn document_content(&self, document_id: &str) -> Result<Option<views::DocumentContent>> {
        for (id, keys, _) in self.active_accounts()? {
            let Some(doc) = self
                .store
                .get(&keys, &id, "DocumentReference", document_id)
                .map_err(storage)?
            else {
                continue;
            };
            let Some(binary) = views::document(&doc).and_then(|d| d.binary_id) else {
                return Ok(None);
            };
            return Ok(self
                .store
                .binary(&keys, &id, &binary)
                .map_err(storage)?
                .map(|(ct, bytes)| views::document_content_raw(&ct, bytes)));
        }
        Ok(None)
    }

    /// The active patient's demographics.
    pub fn demographics(&self) -> Result<Option<views::Demographics>> {
        Ok(self.records()?.into_iter().next())
    }

    /// The newest result of each test of the active patient, newest first (from the store's latest-per-code table).
    pub fn latest_results(&self) -> Result<Vec<views::LabResult>> {
        let mut out = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            let briefs = self.store.latest_briefs(&keys, &id).map_err(storage)?;
            // A brief that does not decode: this account's lab results, parsed whole, instead.
            let full = || {
                self.store
                    .of_type(&keys, &id, "Observation")
                    .map_err(storage)
            };
            for mut r in views::results_from_briefs(&briefs, full)? {
                r.source = Some(label.clone());
                out.push(r);
            }
        }
        // Across providers (and over a full parse), keep the newest per code.
        let mut out = views::latest_per_code(&out);
        out.sort_unstable_by_key(|r| {
            std::cmp::Reverse(r.date.as_ref().map(views::FhirDate::sort_key))
        });
        Ok(out)
    }

    /// The health summary of the active patient.
    pub fn summary(&self) -> Result<HealthSummary> {
        let active = |s: &Option<String>| s.as_deref().is_none_or(|s| s == "active");
        Ok(HealthSummary {
            patient: self.demographics()?,
            allergies: self.allergies()?,
            medications: self
                .medications()?
                .into_iter()
                .filter(|m| m.status == "active")
                .collect(),
            immunizations: self.immunizations()?,
            problems: self
                .problems()?
                .into_iter()
                .filter(|p| active(&p.clinical_status))
                .collect(),
            latest_results: self.latest_results()?,
        })
    }
}
