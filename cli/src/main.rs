//! `chartlink`: a desktop client of the ChartLink SDK, and `chartlink demo`, the project's main job.
//!
//! Real use: `chartlink providers QUERY --directory URL`, `chartlink link PROVIDER|FHIR-BASE` (the system browser,
//! with a loopback redirect), `chartlink sync`, `chartlink patients`, `chartlink switch ID`, `chartlink labs
//! [--trend CODE]`, `chartlink allergies|meds|immunizations|problems|visits|documents|appointments`,
//! `chartlink unlink ID`, `chartlink lock|unlock`. Data lives in the platform's data directory (`--data-dir` or
//! `CHARTLINK_DATA_DIR` to change it), the store key and tokens in 0600 files as the desktop stand-in for the
//! Keychain. `--json` prints machine-readable output. Exit codes: see [`EXIT_CODES`] (also in `--help`).
//!
//! Everything printed goes through [`term`], which neutralises what a server sent (escape sequences, controls,
//! bidi overrides); `print!`, `println!` and `eprintln!` are denied so nothing goes around it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod term;
mod browser;
mod demo;
mod render;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chartlink_cli::FileSecureStore;
use chartlink_core::directory::{self, CachedBundle, Directory};
use chartlink_core::views::Line;
use chartlink_core::{AppConfig, ChartLink, DataCategory, Error, Host, LockConfig, SystemClock};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::session::Session;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "Exit codes:
  0  ok
  1  anything else
  2  invalid input (a bad address or option, no linked record)
  3  network: the provider could not be reached or failed for now; try again later
  4  locked: run `chartlink unlock`
  5  access ended at the provider (expired or revoked): the record is kept; link again
  6  authorization refused by the provider (its reason is shown), or the login could not be completed
  7  storage (the local database or key files)
  8  synced only in part
  9  access must be renewed: link again (the record is kept)
  10 not a usable SMART server (no or an unusable SMART configuration, no PKCE S256, not FHIR R4)
  11 cancelled, or no answer from the browser within 10 minutes
  12 you chose Deny at the provider's portal: nothing was linked
  13 the provider's server could not answer this (a 404 or 400 on a read, not FHIR, too large)";

/// ChartLink: your health record from your provider's portal, on your computer.
#[derive(Debug, Parser)]
#[command(name = "chartlink", version, after_help = EXIT_CODES)]
struct Cli {
    /// Where ChartLink keeps its encrypted database and keys.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// The app's client id at the provider (the sandbox registers `chartlink-demo`).
    #[arg(long, global = true, default_value = "chartlink-demo")]
    client_id: String,
    /// Lists: only records dated on or after this FHIR date (2024, 2024-06, 2024-06-01).
    #[arg(long, global = true)]
    from: Option<String>,
    /// Lists: only records dated on or before this FHIR date (at its precision: 2024 runs through December).
    #[arg(long, global = true)]
    to: Option<String>,
    /// Lists: at most this many records (1 to 1000); the output ends with how to get the next page.
    #[arg(long, global = true)]
    limit: Option<usize>,
    /// Lists: the page after this record (the id of the previous page's last record, which it prints).
    #[arg(long, global = true)]
    after: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// The date range and page the list options ask for; `None` when none is given (the whole list).
    fn paging(&self) -> Result<Option<chartlink_core::RecordQuery>, CliError> {
        if self.from.is_none() && self.to.is_none() && self.limit.is_none() && self.after.is_none()
        {
            return Ok(None);
        }
        let date = |text: &Option<String>, flag: &str| -> Result<_, CliError> {
            text.as_deref()
                .map(|t| {
                    chartlink_core::views::FhirDate::parse(t).ok_or_else(|| CliError {
                        code: 2,
                        message: format!("--{flag} takes a FHIR date: 2024, 2024-06 or 2024-06-01"),
                    })
                })
                .transpose()
        };
        Ok(Some(chartlink_core::RecordQuery {
            from: date(&self.from, "from")?,
            to: date(&self.to, "to")?,
            limit: self.limit,
            after: self.after.clone(),
        }))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole mission against a sandbox EHR started in this process.
    Demo {
        /// Open the real browser on the portal's pages instead of the scripted patient.
        #[arg(long)]
        interactive: bool,
        /// The demo's idle timeout in seconds.
        #[arg(long, default_value_t = 3)]
        lock_seconds: u64,
        /// Keep the demo's database and chart here (default: a temporary directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Search a provider directory (SMART User-access Brands or Epic endpoints bundle, by URL or file).
    Providers {
        query: String,
        /// Directory URL or file (or CHARTLINK_DIRECTORY). Downloads are cached with their ETag.
        #[arg(long, env = "CHARTLINK_DIRECTORY")]
        directory: Option<String>,
        /// Check each endpoint's SMART discovery.
        #[arg(long)]
        check: bool,
    },
    /// Link a provider: a FHIR base URL, or a provider's name from the last directory search.
    Link { target: String },
    /// Sync every linked record (or one).
    Sync { account: Option<String> },
    /// The active patient's health summary: allergies, active medications and problems, immunizations, the latest
    /// result of each test.
    Summary,
    /// One document's text (a clinical note), by the id `documents` shows.
    Document { id: String },
    /// The patients you have linked.
    Patients,
    /// Make a patient the active one.
    Switch { id: String },
    /// Show two (or more) patients linked at different providers as one person (see the suggestions `patients`
    /// prints). Nothing is merged without this.
    Merge {
        #[arg(required = true, num_args = 2..)]
        ids: Vec<String>,
    },
    /// Undo a merge: show the patient's providers as separate patients again.
    Split { id: String },
    /// Lab results (or one test over time).
    Labs {
        #[arg(long)]
        trend: Option<String>,
        /// Write the trend as SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Every other list of the record (allergies, meds, visits, billing, ...): one command each, from core's
    /// `record_lists!` table.
    #[command(flatten)]
    List(ListCommand),
    /// Vital signs.
    Vitals,
    /// Observations that are neither labs nor vitals (surveys, exams, imaging, social history).
    Observations,
    /// Social history (smoking status), whichever category carries it.
    SocialHistory,
    /// The active patient's whole record as FHIR, from every provider: a Bundle (type collection) or NDJSON (one
    /// resource a line), to standard output or a file.
    Export {
        /// `bundle` or `ndjson`.
        #[arg(long, value_enum, default_value_t = ExportFormatArg::Bundle)]
        format: ExportFormatArg,
        /// Write here (a new file, readable only by you: it holds health information) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One stored record as the FHIR JSON the provider sent, by type and id: `chartlink record Observation lab-1`.
    Record { resource_type: String, id: String },
    /// Revoke a link at the provider and delete its data here.
    Unlink { id: String },
    /// Lock now: nothing can be read until `chartlink unlock`.
    Lock,
    /// Unlock.
    Unlock,
}

/// The forms of `chartlink export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormatArg {
    /// One FHIR Bundle of type collection.
    Bundle,
    /// Newline-delimited JSON, one resource a line.
    Ndjson,
}

/// An error with its exit code and a message that is safe to print.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn other(message: String) -> Self {
        Self { code: 1, message }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::InvalidInput(_) => 2,
            Error::Network(_) => 3,
            Error::Locked => 4,
            Error::AccessRevoked => 5,
            Error::Authorization(ref f)
                if f.reason == chartlink_core::AuthorizationReason::Denied =>
            {
                12
            }
            Error::Authorization(_) => 6,
            Error::Discovery(_) => 10,
            Error::Cancelled => 11,
            Error::Storage(_) => 7,
            Error::Server(_) => 13,
            Error::RelinkNeeded => 9,
        };
        let message = match e {
            Error::Locked => "ChartLink is locked: run `chartlink unlock`".to_owned(),
            Error::Authorization(ref f)
                if f.reason == chartlink_core::AuthorizationReason::Denied =>
            {
                "you chose Deny at the provider's portal: nothing was linked".to_owned()
            }
            other => other.to_string(),
        };
        Self { code, message }
    }
}

impl From<chartlink_core::http::HttpError> for CliError {
    fn from(e: chartlink_core::http::HttpError) -> Self {
        Error::from(e).into()
    }
}

impl From<chartlink_core::SecureStoreError> for CliError {
    fn from(e: chartlink_core::SecureStoreError) -> Self {
        Self {
            code: 7,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("chartlink: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("chartlink: {}", term::field(&e.message));
            ExitCode::from(e.code)
        }
    }
}

struct App {
    sdk: ChartLink,
    dir: PathBuf,
    session: Session,
    json: bool,
    /// The kind of data the command lists (to say, on an empty list, whether the provider did not share it).
    category: Option<DataCategory>,
    /// The date range and page of a list (`--from`, `--to`, `--limit`, `--after`).
    paging: Option<chartlink_core::RecordQuery>,
}

impl App {
    fn open(cli: &Cli, enforce_lock: bool) -> Result<Self, CliError> {
        let dir = cli
            .data_dir
            .clone()
            .unwrap_or_else(session::default_data_dir);
        let mut session = Session::load(&dir);
        let now = session::now_ms();
        if enforce_lock && session.is_locked(now) {
            return Err(Error::Locked.into());
        }
        let sdk = Self::sdk(cli, &dir, false)?;
        if let Some(active) = &session.active_patient
            && sdk.switch_patient(active).is_err()
        {
            session.active_patient = None;
        }
        if session.active_patient.is_none()
            && let Some(first) = sdk.patients()?.first()
        {
            sdk.switch_patient(&first.id)?;
            session.active_patient = Some(first.id.clone());
        }
        session.last_activity_ms = now;
        Ok(Self {
            sdk,
            dir,
            session,
            json: cli.json,
            category: category_of(&cli.command),
            paging: cli.paging()?,
        })
    }

    /// Whether `chartlink lock` (or the idle timeout) holds.
    fn session_locked(cli: &Cli) -> bool {
        let dir = cli
            .data_dir
            .clone()
            .unwrap_or_else(session::default_data_dir);
        Session::load(&dir).is_locked(session::now_ms())
    }

    /// The SDK as the CLI configures it; `locked`: built locked (the store key is not read).
    fn sdk(cli: &Cli, dir: &std::path::Path, locked: bool) -> Result<ChartLink, CliError> {
        let host = Host::new(Arc::new(FileSecureStore::new(dir.join("keys"))?));
        let host = Host {
            clock: Arc::new(SystemClock),
            ..host
        };
        let config = AppConfig {
            data_dir: Some(dir.to_owned()),
            lock: LockConfig::desktop(),
            app_name: "ChartLink CLI".into(),
            ..AppConfig::new(&cli.client_id, "http://127.0.0.1/callback")
        };
        Ok(if locked {
            ChartLink::new_locked(config, host)?
        } else {
            ChartLink::new(config, host)?
        })
    }

    fn save(&self) -> Result<(), CliError> {
        self.session.save(&self.dir).map_err(|e| CliError {
            code: 7,
            message: format!("cannot save the session: {e}"),
        })
    }

    fn print(&self, human: impl FnOnce() -> String, machine: impl FnOnce() -> Value) {
        if self.json {
            outln!("{}", term::json(&machine().to_string()));
        } else {
            term::out(&human());
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Demo {
            interactive,
            lock_seconds,
            out,
        } => {
            demo::run(demo::DemoArgs {
                interactive: *interactive,
                lock_seconds: *lock_seconds,
                out: out.clone(),
            })
            .await
        }
        Command::Providers {
            query,
            directory,
            check,
        } => providers(&cli, query, directory.as_deref(), *check).await,
        Command::Lock => {
            let dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(session::default_data_dir);
            let mut s = Session::load(&dir);
            s.locked = true;
            s.save(&dir).map_err(|e| CliError {
                code: 7,
                message: e.to_string(),
            })?;
            outln!("locked");
            Ok(())
        }
        Command::Unlock => {
            let dir = cli
                .data_dir
                .clone()
                .unwrap_or_else(session::default_data_dir);
            let mut s = Session::load(&dir);
            s.locked = false;
            s.last_activity_ms = session::now_ms();
            s.save(&dir).map_err(|e| CliError {
                code: 7,
                message: e.to_string(),
            })?;
            outln!("unlocked");
            Ok(())
        }
        Command::Sync { account: None } if App::session_locked(&cli) => locked_sync(&cli).await,
        _ => {
            let mut app = App::open(&cli, true)?;
            let result = command(&cli, &mut app).await;
            app.save()?;
            result
        }
    }
}

async fn command(cli: &Cli, app: &mut App) -> Result<(), CliError> {
    let sdk = &app.sdk;
    match &cli.command {
        Command::Link { target } => {
            let base = if target.starts_with("http://") || target.starts_with("https://") {
                target.clone()
            } else {
                provider_base(&app.dir, target)?
            };
            let mut loopback = browser::Loopback::bind()
                .await
                .map_err(|e| CliError::other(format!("cannot listen on loopback: {e}")))?;
            let req = sdk
                .begin_link_with_redirect(&base, &loopback.redirect_uri())
                .await?;
            // A server that takes POST gets the request as a form (no URL length limit, SMART client req. 133),
            // from a page on the loopback listener.
            let open = match &req.post {
                Some(form) => loopback.serve_start_page(form.auto_submit_html()),
                None => req.url.to_string(),
            };
            errln!(
                "Opening your browser to log in at your provider's portal. If it does not open, visit:\n{}",
                open
            );
            if let Err(e) = browser::open_system_browser(&open) {
                errln!(
                    "chartlink: the browser could not be opened ({}); open the address above yourself",
                    e.kind()
                );
            }
            let redirect = loopback
                .wait(Duration::from_secs(600))
                .await
                .map_err(|_| CliError {
                    code: 11,
                    message: "no answer from the browser within 10 minutes".into(),
                })?;
            let account = sdk.complete_link(&redirect).await?;
            if app.session.active_patient.is_none() {
                app.session.active_patient = Some(account.id.clone());
            }
            app.print(
                || {
                    format!(
                        "linked {} at {} (account {})\n{}",
                        term::field(&account.patient_id),
                        term::field(account.server.fhir_base.as_str()),
                        term::field(&account.id),
                        render::consent_lines(&account)
                    )
                },
                || to_json(&account),
            );
        }
        Command::Sync { account } => sync(cli, app, account.as_deref()).await?,
        Command::Patients => {
            let active = app.session.active_patient.clone();
            let list = sdk.patients()?;
            let suggestions = sdk.merge_suggestions()?;
            // Whether a patient's access must be renewed by linking again (its record stays readable).
            let accounts = sdk.accounts()?;
            let relink = |p: &chartlink_core::PatientContext| {
                accounts.iter().any(|a| {
                    p.account_ids.contains(&a.id)
                        && a.status == chartlink_core::AccountStatus::RelinkNeeded
                })
            };
            app.print(
                || {
                    let mut out: String = list.iter()
                        .map(|p| format!("{} {}  {}  {:?}{}{}{}\n", if Some(&p.id) == active.as_ref() { "*" } else { " " }, term::field(&p.id), term::field(p.name.as_deref().unwrap_or("(not synced yet)")), p.relation, if p.restricted { ", restricted" } else { "" }, if p.revoked { ", access ended: link again (the record is kept)" } else { "" }, if relink(p) { ", access must be renewed: link again (the record is kept)" } else { "" }))
                        .collect();
                    for m in &suggestions {
                        let why = match m.reason {
                            chartlink_core::MergeReason::SharedIdentifier => "the same identifier",
                            chartlink_core::MergeReason::SameNameAndBirthDate => "the same name and birth date",
                        };
                        let ids: Vec<String> = m.context_ids.iter().map(|i| term::field(i)).collect();
                        out.push_str(&format!("  possibly one person ({why}): chartlink merge {}\n", ids.join(" ")));
                    }
                    out
                },
                // The list as before; each patient carries the ids of the others it may be (merge suggestions).
                || json!(list.iter().map(|p| json!({"id": p.id, "name": p.name, "birth_date": p.birth_date, "relation": format!("{:?}", p.relation), "restricted": p.restricted, "revoked": p.revoked, "relink_needed": relink(p), "active": Some(&p.id) == active.as_ref(), "providers": p.providers, "maybe_same_as": suggestions.iter().filter(|m| m.context_ids.contains(&p.id)).flat_map(|m| m.context_ids.iter().filter(|i| **i != p.id).cloned()).collect::<Vec<_>>()})).collect::<Vec<_>>()),
            );
        }
        Command::Merge { ids } => {
            let merged = sdk.confirm_merge(ids)?;
            app.print(
                || {
                    format!(
                        "{} is now one patient with {} providers\n",
                        term::field(merged.name.as_deref().unwrap_or(&merged.id)),
                        merged.providers.len()
                    )
                },
                || json!({"merged": merged.id, "accounts": merged.account_ids}),
            );
        }
        Command::Split { id } => {
            sdk.split_patient(id)?;
            app.print(|| "split\n".to_owned(), || json!({"split": id}));
        }
        Command::Switch { id } => {
            let ctx = sdk.switch_patient(id)?;
            app.session.active_patient = Some(ctx.id.clone());
            app.print(
                || {
                    format!(
                        "now showing {}\n",
                        term::field(ctx.name.as_deref().unwrap_or(&ctx.id))
                    )
                },
                || json!({"active": ctx.id}),
            );
        }
        Command::Labs {
            trend: Some(code),
            svg,
        } => {
            let t = sdk.lab_trend(code)?.ok_or_else(|| CliError {
                code: 2,
                message: format!("no numeric results for {code}"),
            })?;
            if let Some(path) = svg {
                std::fs::write(path, render::svg(&t)).map_err(|e| {
                    CliError::other(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            app.print(|| render::chart(&t, 60, 12), || to_json(&t));
        }
        Command::Labs { trend: None, .. } => list(app, sdk.lab_results()?, render::lab_line)?,
        Command::Summary => {
            let summary = sdk.summary()?;
            let restricted = sdk.active_patient()?.is_some_and(|p| p.restricted);
            app.print(
                || render::summary(&summary, restricted),
                || to_json(&summary),
            );
        }
        Command::Document { id } => match sdk.document_content(id)? {
            Some(chartlink_core::views::DocumentContent::Text(text)) => {
                app.print(|| format!("{text}\n"), || json!({"id": id, "text": text}));
            }
            Some(chartlink_core::views::DocumentContent::Html(html)) => {
                app.print(|| format!("{html}\n"), || json!({"id": id, "html": html}));
            }
            Some(_) => {
                return Err(CliError {
                    code: 2,
                    message: "this document is not text (a PDF or an image): export it with `chartlink export`"
                        .into(),
                });
            }
            None => {
                return Err(CliError {
                    code: 2,
                    message:
                        "the active patient has no document with that id, or it has no content"
                            .into(),
                });
            }
        },
        Command::List(kind) => kind.print(app)?,
        Command::Vitals => list(app, sdk.vital_signs()?, Line::line)?,
        Command::Observations => list(app, sdk.observations()?, Line::line)?,
        Command::SocialHistory => list(app, sdk.social_history()?, Line::line)?,
        Command::Export { format, out } => {
            let format = match format {
                ExportFormatArg::Bundle => chartlink_core::ExportFormat::Bundle,
                ExportFormatArg::Ndjson => chartlink_core::ExportFormat::Ndjson,
            };
            let text = sdk.export(format)?;
            match out {
                Some(path) => write_private(path, text.as_bytes())?,
                // Each line as JSON safe for a terminal (control and invisible characters escaped).
                None => {
                    for line in text.lines() {
                        outln!("{}", term::json(line));
                    }
                }
            }
        }
        Command::Record { resource_type, id } => match sdk.record_json(resource_type, id)? {
            Some(json) => outln!("{}", term::json(&json)),
            None => {
                return Err(CliError {
                    code: 2,
                    message: format!(
                        "the active patient has no {} with that id",
                        term::field(resource_type)
                    ),
                });
            }
        },
        Command::Unlink { id } => {
            let outcome = sdk.unlink(id).await?;
            if app.session.active_patient.as_deref() == Some(id) {
                app.session.active_patient = None;
            }
            app.print(
                || format!("{}\n", render::unlink_line(outcome.revocation)),
                || json!({"revoked_at_provider": outcome.revoked_at_provider, "revocation": outcome.revocation}),
            );
        }
        Command::Demo { .. } | Command::Providers { .. } | Command::Lock | Command::Unlock => {}
    }
    Ok(())
}

/// Writes a new file only the user can read (an export holds health information); an existing file is not
/// overwritten.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let fail = |e: std::io::Error| CliError {
        code: 7,
        message: format!("cannot write the export: {}", e.kind()),
    };
    let mut f = options.open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// `chartlink sync` while locked: the SDK's background sync, as a phone runs it in a pocket. It reads no store key,
/// writes what arrives sealed (readable after `chartlink unlock`), and says only how many records of each kind came
/// from which provider: no names, values or ids.
async fn locked_sync(cli: &Cli) -> Result<(), CliError> {
    let dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(session::default_data_dir);
    let sdk = App::sdk(cli, &dir, true)?;
    let budget = chartlink_core::SyncBudget {
        // Run from a terminal: every account now, with time enough for a whole record.
        min_interval_ms: 0,
        max_duration_ms: 10 * 60_000,
        ..chartlink_core::SyncBudget::default()
    };
    let report = sdk.background_sync(&budget).await?;
    if cli.json {
        let accounts: Vec<Value> = report
            .accounts
            .iter()
            .map(|a| {
                json!({
                    "account": a.account_id,
                    "provider": a.provider,
                    "outcome": format!("{:?}", a.outcome),
                    "counts": a.counts.iter().map(|c| json!({"kind": format!("{:?}", c.kind), "count": c.count})).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            term::json(
                &json!({"locked": report.locked, "total": report.total(), "accounts": accounts})
                    .to_string()
            )
        );
    } else {
        for a in &report.accounts {
            let counts: Vec<String> = a
                .counts
                .iter()
                .map(|c| format!("{} {:?}", c.count, c.kind))
                .collect();
            outln!(
                "{}: {:?}{}",
                term::field(&a.provider),
                a.outcome,
                if counts.is_empty() {
                    String::new()
                } else {
                    format!(", {}", counts.join(", "))
                }
            );
        }
        outln!(
            "synced while locked: {} new or changed records, readable after `chartlink unlock`",
            report.total()
        );
    }
    let failed = report.accounts.iter().any(|a| {
        matches!(
            a.outcome,
            chartlink_core::BackgroundOutcome::NetworkFailed
                | chartlink_core::BackgroundOutcome::StorageFailed
                | chartlink_core::BackgroundOutcome::AuthorizationFailed
        )
    });
    if failed {
        return Err(CliError {
            code: 8,
            message: "some accounts did not sync (see above)".into(),
        });
    }
    Ok(())
}

/// How the sync of one account went.
#[derive(Debug)]
struct AccountSync {
    id: String,
    /// The report, or why the account could not be synced at all.
    result: Result<chartlink_core::SyncReport, CliError>,
    /// The queries planned for it (from the progress).
    queries: std::collections::BTreeSet<String>,
}

impl AccountSync {
    /// The failures that are errors (a query the grant does not cover is not one).
    fn errors(&self) -> Vec<&chartlink_core::sync::QueryFailure> {
        match &self.result {
            Ok(r) => r.failures.iter().filter(|f| !f.not_granted).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Why nothing of this account was synced, if nothing was: the account failed, or every query did.
    fn nothing_synced(&self) -> Option<CliError> {
        match &self.result {
            Err(e) => Some(CliError {
                code: e.code,
                message: e.message.clone(),
            }),
            Ok(r) => {
                let failed: std::collections::BTreeSet<&str> =
                    r.failures.iter().map(|f| f.query.as_str()).collect();
                if self.queries.is_empty()
                    || !self.queries.iter().all(|q| failed.contains(q.as_str()))
                {
                    return None;
                }
                let errors = self.errors();
                Some(match errors.first() {
                    Some(f) => CliError {
                        code: 3,
                        message: format!("every query failed ({})", f.reason),
                    },
                    None => CliError {
                        code: 6,
                        message: "the provider shares none of the record with this app".into(),
                    },
                })
            }
        }
    }
}

/// `chartlink sync`: every account (or one). Exits 0 when everything synced; with the cause's code (3
/// network, 5 access revoked, 6 authorization, ...) when nothing could be synced; with 8 when only a part was.
async fn sync(cli: &Cli, app: &App, account: Option<&str>) -> Result<(), CliError> {
    let sdk = &app.sdk;
    let ids: Vec<String> = match account {
        Some(a) => vec![a.to_owned()],
        // Every account, also those revoked or needing a new link: each says so instead of being skipped silently.
        None => sdk.accounts()?.into_iter().map(|a| a.id).collect(),
    };
    if ids.is_empty() {
        return Err(CliError {
            code: 2,
            message: "no linked record to sync: run `chartlink link` first".into(),
        });
    }
    let mut done = Vec::new();
    for id in ids {
        let mut queries = std::collections::BTreeSet::new();
        let result = sdk
            .sync_with(&id, &chartlink_core::SyncOptions::default(), &mut |p| {
                queries.insert(p.query.clone());
                if !cli.json && p.pages == 0 {
                    errln!("  {:>2}/{:<2} {}", p.queries_done, p.queries_total, p.query);
                }
            })
            .await
            .map_err(CliError::from);
        done.push(AccountSync {
            id,
            result,
            queries,
        });
    }
    let machine = || {
        json!(done.iter().map(|a| match &a.result {
            Ok(report) => {
                let per_type: Value = report
                    .per_type
                    .iter()
                    .map(|(t, c)| (t.clone(), json!({"new": c.new, "changed": c.changed, "deleted": c.deleted})))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                json!({"account": a.id, "synced": a.nothing_synced().is_none(), "full_pass": report.full_pass,
                    "updated": report.updated(), "per_type": per_type,
                    "failures": report.failures.iter().map(|f| json!({"query": f.query, "not_granted": f.not_granted, "reason": f.reason})).collect::<Vec<_>>(),
                    "duration_ms": report.duration_ms})
            }
            Err(e) => json!({"account": a.id, "synced": false, "error": e.message, "exit_code": e.code}),
        }).collect::<Vec<_>>())
    };
    let human = || {
        let mut out = String::new();
        for a in &done {
            let id = term::field(&a.id);
            match &a.result {
                Ok(r) => {
                    let errors = a.errors();
                    out += &format!(
                        "{id}: {} new or changed, {} failures, {} ms\n",
                        r.updated(),
                        errors.len(),
                        r.duration_ms
                    );
                    for f in errors {
                        out += &format!(
                            "  ! {}: {}\n",
                            term::field(&f.query),
                            term::field(&f.reason)
                        );
                    }
                }
                Err(e) => out += &format!("{id}: not synced: {}\n", term::field(&e.message)),
            }
        }
        out
    };
    app.print(human, machine);
    let failed: Vec<(&AccountSync, CliError)> = done
        .iter()
        .filter_map(|a| a.nothing_synced().map(|e| (a, e)))
        .collect();
    if failed.len() == done.len() {
        let code = failed.first().map_or(1, |(_, e)| e.code);
        let why: Vec<String> = failed
            .iter()
            .map(|(a, e)| format!("{}: {}", a.id, e.message))
            .collect();
        return Err(CliError {
            code,
            message: format!("nothing could be synced ({})", why.join("; ")),
        });
    }
    let partial: Vec<String> = done
        .iter()
        .filter_map(|a| {
            if let Some(e) = a.nothing_synced() {
                return Some(format!("{}: nothing ({})", a.id, e.message));
            }
            let kinds: std::collections::BTreeSet<&str> =
                a.errors().iter().map(|f| f.query.as_str()).collect();
            (!kinds.is_empty()).then(|| {
                format!(
                    "{}: {}",
                    a.id,
                    kinds.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect();
    if !partial.is_empty() {
        return Err(CliError {
            code: 8,
            message: format!("synced in part; not synced: {}", partial.join("; ")),
        });
    }
    Ok(())
}

/// Prints a list (one line per record, or JSON), or the page of it the list options ask for: then the JSON is
/// `{records, next_after, total}` and the text ends with how to get the next page.
fn list<T: serde::Serialize + chartlink_core::views::View>(
    app: &App,
    items: Vec<T>,
    line: impl Fn(&T) -> String,
) -> Result<(), CliError> {
    let Some(query) = &app.paging else {
        app.print(
            || {
                if items.is_empty() {
                    return empty_note(app);
                }
                items.iter().map(|i| term::field(&line(i)) + "\n").collect()
            },
            || to_json(&items),
        );
        return Ok(());
    };
    let page = app.sdk.page_of(items, query)?;
    app.print(
        || {
            if page.total == 0 {
                return empty_note(app);
            }
            let mut text: String = page
                .records
                .iter()
                .map(|i| term::field(&line(i)) + "\n")
                .collect();
            if let Some(next) = &page.next_after {
                text.push_str(&format!(
                    "({} of {}; next page: --after {})\n",
                    page.records.len(),
                    page.total,
                    term::field(next)
                ));
            }
            text
        },
        || {
            json!({
                "records": to_json(&page.records),
                "next_after": page.next_after,
                "total": page.total,
            })
        },
    );
    Ok(())
}

/// The kind of data a listing command shows.
fn category_of(command: &Command) -> Option<DataCategory> {
    use DataCategory as D;
    Some(match command {
        Command::Labs { .. } => D::LabResults,
        Command::Vitals => D::VitalSigns,
        Command::SocialHistory => D::SocialHistory,
        Command::Observations => D::OtherObservations,
        Command::List(kind) => return kind.category(),
        _ => return None,
    })
}

/// The list commands, one for each list of core's `record_lists!` table (`read => View, CliCommand;`): its help
/// text is the table's description, and it prints `sdk.{read}()` one [`Line`] a record.
macro_rules! list_commands {
    ($($(#[$doc:meta])* $read:ident => $view:ident, $cli:ident;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
        enum ListCommand {
            $($(#[$doc])* $cli,)*
        }

        impl ListCommand {
            fn print(self, app: &App) -> Result<(), CliError> {
                match self {
                    $(Self::$cli => list(app, app.sdk.$read()?, Line::line),)*
                }
            }

            /// The data category the list is shared under (for an empty list: was it shared at all?).
            fn category(self) -> Option<DataCategory> {
                match self {
                    $(Self::$cli => category_of_view::<chartlink_core::views::$view>(),)*
                }
            }
        }
    };
}

chartlink_core::record_lists!(list_commands);

/// The data category of a view's records, from core's table of resource types.
fn category_of_view<V: chartlink_core::views::View>() -> Option<DataCategory> {
    let ty = V::RESOURCE_TYPES.first()?;
    chartlink_core::kinds::of_type(ty).map(|k| k.category)
}

/// What an empty list means: the provider did not share that kind of data (the patient unticked it at the portal,
/// or the provider does not offer it), or the record simply holds none.
fn empty_note(app: &App) -> String {
    let not_shared = app.category.is_some_and(|category| {
        let Ok(Some(patient)) = app.sdk.active_patient() else {
            return false;
        };
        let accounts = app.sdk.accounts().unwrap_or_default();
        let mine: Vec<_> = accounts
            .iter()
            .filter(|a| patient.account_ids.contains(&a.id))
            .collect();
        !mine.is_empty()
            && mine.iter().all(|a| {
                a.consent.iter().any(|c| {
                    c.category == category && c.consent == chartlink_core::Consent::NotGranted
                })
            })
    });
    if not_shared {
        "(none: the provider did not share this kind of record with ChartLink; link again to share it)\n".into()
    } else {
        "(none in this record)\n".into()
    }
}

fn cache_path(dir: &std::path::Path) -> PathBuf {
    dir.join("directory-cache.json")
}

async fn providers(
    cli: &Cli,
    query: &str,
    source: Option<&str>,
    check: bool,
) -> Result<(), CliError> {
    let dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(session::default_data_dir);
    let cached: Option<CachedBundle> = std::fs::read(cache_path(&dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let bundle = match source {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            let http = chartlink_core::http::Http::new()?;
            let fetched = directory::fetch(&http, s, cached.as_ref())
                .await
                .map_err(|e| CliError {
                    code: 3,
                    message: e.to_string(),
                })?;
            std::fs::create_dir_all(&dir).ok();
            let _ = std::fs::write(
                cache_path(&dir),
                serde_json::to_vec(&fetched).unwrap_or_default(),
            );
            fetched.body
        }
        Some(file) => std::fs::read(file).map_err(|e| CliError {
            code: 2,
            message: format!("cannot read {file}: {e}"),
        })?,
        None => cached.map(|c| c.body).ok_or_else(|| CliError {
            code: 2,
            message: "give --directory URL|FILE (or set CHARTLINK_DIRECTORY)".into(),
        })?,
    };
    let mut d = Directory::from_bundle(&bundle).map_err(|e| CliError {
        code: 2,
        message: e.to_string(),
    })?;
    if check {
        d.check_endpoints(&chartlink_core::http::Http::new()?).await;
    }
    let hits = d.search(query, 20);
    if cli.json {
        outln!(
            "{}",
            term::json(
                &json!(hits.iter().map(|h| to_json(h.provider)).collect::<Vec<_>>()).to_string()
            )
        );
    } else {
        for h in hits {
            let p = h.provider;
            outln!(
                "{}  {}",
                term::field(&p.name),
                term::field(&p.cities.join(", "))
            );
            for e in &p.endpoints {
                outln!("    {} [{:?}]", term::field(&e.fhir_base), e.status);
            }
        }
    }
    Ok(())
}

/// The FHIR base of a provider found by name in the cached directory.
fn provider_base(dir: &std::path::Path, name: &str) -> Result<String, CliError> {
    let cached: CachedBundle = std::fs::read(cache_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| CliError { code: 2, message: "no provider directory yet: run `chartlink providers QUERY --directory URL` first, or give a FHIR base URL".into() })?;
    let d = Directory::from_bundle(&cached.body).map_err(|e| CliError {
        code: 2,
        message: e.to_string(),
    })?;
    let hit = d
        .search(name, 1)
        .into_iter()
        .next()
        .ok_or_else(|| CliError {
            code: 2,
            message: format!("no provider matches {name:?}"),
        })?;
    hit.provider
        .endpoints
        .iter()
        .find(|e| e.status != directory::EndpointStatus::DiscoveryFailed)
        .map(|e| e.fhir_base.clone())
        .ok_or_else(|| CliError {
            code: 2,
            message: format!("{} has no working endpoint", hit.provider.name),
        })
}
