//! `chartlink demo`: the whole mission on one machine, with nothing to install. Starts the sandbox EHR in process,
//! links a parent's own record and then her 9-year-old's (two authorizations, the portal's account picker choosing
//! each), syncs both with progress, prints each health summary, draws a lab trend in the terminal and as an SVG
//! file, switches patients, lets the idle lock fire after a short timeout and unlocks.
//!
//! By default a scripted patient fills the portal's pages (CI-safe: no terminal or browser needed);
//! `--interactive` opens the real browser on the portal and waits for you.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chartlink_cli::FileSecureStore;
use chartlink_core::{
    AppConfig, ChartLink, Event, EventListener, Host, LockConfig, PatientContext, SyncOptions,
    SyncProgress, SystemClock,
};
use chartlink_sandbox::{Config, PortalRobot, Sandbox};

use crate::browser::{Loopback, ScriptedPatient, ScriptedPatients, open_system_browser};
use crate::term::field;
use crate::{CliError, render};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub interactive: bool,
    pub lock_seconds: u64,
    pub out: Option<PathBuf>,
}

struct Printer;

impl EventListener for Printer {
    fn on_event(&self, event: Event) {
        match event {
            Event::LockWarning { remaining_ms } => outln!(
                "  event: lock warning - locking in {:.1} s unless you do something",
                remaining_ms as f64 / 1000.0
            ),
            Event::Locked(reason) => outln!(
                "  event: LOCKED ({reason:?}): the store key and tokens are gone from memory"
            ),
            Event::Unlocked => outln!("  event: unlocked"),
            Event::AccessRevoked { .. } => outln!("  event: access revoked by the provider"),
            Event::RelinkNeeded { .. } => {
                outln!("  event: access can no longer be renewed; link again (the record is kept)")
            }
            Event::LinkLimited { can_renew, .. } => outln!(
                "  event: linked with less than asked{}",
                if can_renew {
                    ""
                } else {
                    " (no refresh token: access ends with this session)"
                }
            ),
            Event::LockedInboxApplied { batches } => outln!(
                "  event: what background syncs fetched while locked was applied ({batches} pages)"
            ),
            Event::SyncProgress(_) | Event::SyncFinished(_) | Event::BackgroundSyncFinished(_) => {}
        }
    }
}

fn step(n: u32, title: &str) {
    outln!("\n== {n}. {title}");
}

/// Draws one progress line per sync (redrawn in place on a terminal, one line per finished query otherwise).
fn progress_printer(label: String) -> impl FnMut(SyncProgress) + Send {
    let tty = std::io::stdout().is_terminal();
    let mut resources = 0;
    move |p: SyncProgress| {
        if p.pages > 0 {
            resources = p.resources;
        }
        let total = p.queries_total.max(1);
        let done = p.queries_done.min(total);
        let filled = done * 30 / total;
        let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(30 - filled));
        let line = format!(
            "  {label:<14} {bar} {done:>2}/{total:<2} {:<28} {resources:>5} resources",
            p.query
        );
        if tty {
            crate::term::carriage_return();
            out!("{line}");
            let _ = std::io::stdout().flush();
        } else if p.pages == 0 {
            outln!("{line}");
        }
        if p.pages == 0 {
            resources = 0;
        }
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    step(
        1,
        "Start chartlink-sandbox, a local SMART-on-FHIR EHR with a patient portal",
    );
    let sandbox = Sandbox::start(Config::default())
        .await
        .map_err(|e| CliError::other(format!("cannot start the sandbox: {e}")))?;
    outln!("  {}", sandbox.banner().lines().next().unwrap_or_default());
    outln!("  FHIR base: {}", sandbox.fhir_base());
    let result = demo(&sandbox, &args).await;
    sandbox.shutdown().await;
    result
}

async fn demo(sandbox: &Sandbox, args: &DemoArgs) -> Result<(), CliError> {
    let data_dir = match &args.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("chartlink-demo-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(data_dir.join("keys"));
    let _ = std::fs::remove_file(data_dir.join("chartlink.db"));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| CliError::other(format!("cannot create {}: {e}", data_dir.display())))?;
    let secure = Arc::new(FileSecureStore::new(data_dir.join("keys"))?);
    let scripted = ScriptedPatients(Mutex::new(VecDeque::from([
        ScriptedPatient {
            robot: PortalRobot::allowing("maria", "maria-demo", Some("maria-garcia")),
            narrate: true,
        },
        ScriptedPatient {
            robot: PortalRobot::allowing("maria", "maria-demo", Some("leo-garcia")),
            narrate: true,
        },
    ])));
    let lock = LockConfig {
        timeout_ms: args.lock_seconds as i64 * 1000,
        warning_ms: Some(1000),
        background_grace_ms: 0,
    };
    let host = Host {
        secure_store: secure,
        browser: if args.interactive {
            None
        } else {
            Some(Arc::new(scripted))
        },
        clock: Arc::new(SystemClock),
        listener: Some(Arc::new(Printer)),
    };
    let config = AppConfig {
        app_name: "ChartLink demo".into(),
        data_dir: Some(data_dir.clone()),
        lock,
        ..AppConfig::new("chartlink-demo", "chartlink-demo://callback")
    };
    let sdk = ChartLink::new(config, host)?;

    step(
        2,
        "Link Maria's own record, then her son Leo's (two authorizations)",
    );
    let mut linked = Vec::new();
    for (who, patient) in [
        ("Maria (herself)", "maria-garcia"),
        ("Leo (9, Maria is his parent)", "leo-garcia"),
    ] {
        outln!("  linking {who}");
        sdk.record_activity();
        let account = if args.interactive {
            interactive_link(&sdk, &sandbox.fhir_base(), patient).await?
        } else {
            sdk.link(&sandbox.fhir_base()).await?
        };
        outln!(
            "  linked: patient {} - granted {} data scopes, refresh token kept in the secure store",
            field(&account.patient_id),
            account.granted.resources.len()
        );
        linked.push(account);
    }

    step(3, "Sync both records into the encrypted on-device store");
    for a in &linked {
        sdk.record_activity();
        let mut progress = progress_printer(a.patient_id.clone());
        let mut on = |p: SyncProgress| {
            sdk.record_activity();
            progress(p);
        };
        let report = sdk
            .sync_with(&a.id, &SyncOptions::default(), &mut on)
            .await?;
        if std::io::stdout().is_terminal() {
            outln!();
        }
        let counts: Vec<String> = report
            .per_type
            .iter()
            .map(|(t, c)| format!("{t} {}", c.new + c.changed))
            .collect();
        outln!(
            "  {}: {} resources and {} documents in {} ms ({})",
            a.patient_id,
            report.resources_seen,
            report.documents_fetched,
            report.duration_ms,
            counts.join(", ")
        );
        for f in &report.failures {
            outln!("  ! {}: {}", field(&f.query), field(&f.reason));
        }
    }

    step(
        4,
        "Each patient's health summary (the active patient switches between them)",
    );
    let patients = sdk.patients()?;
    let order = |p: &PatientContext| {
        if p.name.as_deref() == Some("Maria Garcia") {
            0
        } else {
            1
        }
    };
    let mut patients = patients;
    patients.sort_by_key(order);
    for p in &patients {
        sdk.record_activity();
        let ctx = sdk.switch_patient(&p.id)?;
        outln!(
            "\n  -> switched to {} ({:?}{})",
            field(ctx.name.as_deref().unwrap_or("?")),
            ctx.relation,
            if ctx.restricted { ", restricted" } else { "" }
        );
        out!(
            "{}",
            indent(&render::summary(&sdk.summary()?, ctx.restricted))
        );
    }

    step(5, "A lab result over time");
    let maria = patients
        .iter()
        .find(|p| p.name.as_deref() == Some("Maria Garcia"))
        .unwrap_or(&patients[0]);
    sdk.switch_patient(&maria.id)?;
    sdk.record_activity();
    // TSH for Maria (hypothyroid, on levothyroxine); otherwise the test with the most results.
    let trend = match sdk.lab_trend("3016-3")? {
        Some(t) if t.points.len() >= 3 => Some(t),
        _ => {
            let labs = sdk.lab_results()?;
            let mut best: Option<chartlink_core::views::LabTrend> = None;
            for code in labs
                .iter()
                .filter_map(|l| l.code.as_ref().and_then(|c| c.code.clone()))
            {
                if let Some(t) = sdk.lab_trend(&code)?
                    && best
                        .as_ref()
                        .is_none_or(|b| t.points.len() > b.points.len())
                {
                    best = Some(t);
                }
            }
            best
        }
    };
    if let Some(t) = trend {
        out!("{}", indent(&render::chart(&t, 60, 12)));
        let path = data_dir.join(format!("trend-{}.svg", t.code));
        std::fs::write(&path, render::svg(&t))
            .map_err(|e| CliError::other(format!("cannot write {}: {e}", path.display())))?;
        outln!("  chart saved as SVG: {}", path.display());
    }

    step(
        6,
        &format!(
            "Idle lock: nothing happens for {} s (the portal's 10 minutes, shortened for the demo)",
            args.lock_seconds
        ),
    );
    sdk.record_activity();
    let deadline =
        std::time::Instant::now() + Duration::from_millis(args.lock_seconds * 1000 + 1500);
    while sdk.locked().is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match sdk.lab_results() {
        Err(chartlink_core::Error::Locked) => {
            outln!("  reading lab results now answers: Locked - the data cannot be read")
        }
        other => {
            return Err(CliError::other(format!(
                "the idle lock did not fire: {:?}",
                other.map(|r| r.len())
            )));
        }
    }
    sdk.unlock()?;
    outln!(
        "  unlocked (a phone would ask for Face ID / the device PIN here): {} lab results readable again",
        sdk.lab_results()?.len()
    );

    outln!(
        "\nDone. The encrypted database and the SVG are in {}",
        data_dir.display()
    );
    Ok(())
}

async fn interactive_link(
    sdk: &ChartLink,
    fhir_base: &str,
    patient: &str,
) -> Result<chartlink_core::LinkedAccount, CliError> {
    let loopback = Loopback::bind()
        .await
        .map_err(|e| CliError::other(format!("cannot listen on loopback: {e}")))?;
    let req = sdk
        .begin_link_with_redirect(fhir_base, &loopback.redirect_uri())
        .await?;
    outln!(
        "  log in as maria / maria-demo, choose {patient:?} in the account picker, then Allow Access."
    );
    outln!("  opening your browser at: {}", req.url);
    if open_system_browser(req.url.as_str()).is_err() {
        outln!("  (could not open a browser; open the URL above yourself)");
    }
    let redirect = loopback
        .wait(Duration::from_secs(600))
        .await
        .map_err(|_| CliError::other("no answer from the browser within 10 minutes".into()))?;
    Ok(sdk.complete_link(&redirect).await?)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
