//! Idle lockout and proxy switching against the sandbox's family: a parent with a 9- and a 15-year-old, an adult
//! with an elderly parent under proxy. Switching never mixes records; the 15-year-old's confidential items stay
//! hidden; a proxy authorization ended mid-session revokes and purges; locked means unreadable, also mid-sync.
//! A property test runs random interleavings of switch, sync, read, lock, unlock and revoke over 10,000 steps.
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotQueue;
use std::sync::{Arc, Mutex};

use chartlink_core::fhir::RetryPolicy;
use chartlink_core::{
    AppConfig, ChartLink, Error, Event, EventListener, Host, LockConfig, LockReason, ManualClock,
    MemorySecureStore, Relation, RevocationPolicy, SyncOptions,
};
use chartlink_sandbox::{Config, PortalRobot, Sandbox};
use serde_json::Value;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventListener for Recorder {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.0.lock().unwrap().iter().any(f)
    }
}

struct Family {
    sdk: Arc<ChartLink>,
    clock: Arc<ManualClock>,
    events: Arc<Recorder>,
}

fn fast() -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            attempts: 4,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
        },
        ..SyncOptions::default()
    }
}

/// `user` links each of `patients` (the portal's picker choosing each), and every link is synced.
async fn family(sb: &Sandbox, user: &str, patients: &[&str], policy: RevocationPolicy) -> Family {
    let robots: Vec<PortalRobot> = patients
        .iter()
        .map(|p| PortalRobot::allowing(user, &format!("{user}-demo"), Some(p)))
        .collect();
    let clock = Arc::new(ManualClock::new());
    let events = Arc::new(Recorder::default());
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: Some(Arc::new(RobotQueue(Mutex::new(robots)))),
        clock: clock.clone(),
        listener: Some(events.clone()),
    };
    let config = AppConfig {
        revocation: policy,
        lock: LockConfig::default(),
        ..AppConfig::new("chartlink-demo", "chartlink-demo://callback")
    };
    let sdk = Arc::new(ChartLink::new(config, host).unwrap());
    for _ in patients {
        let account = sdk.link(&sb.fhir_base()).await.unwrap();
        sdk.sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
    }
    Family { sdk, clock, events }
}

fn patient_of(r: &Value) -> Option<String> {
    if r["resourceType"] == "Patient" {
        return r["id"].as_str().map(str::to_owned);
    }
    for f in ["subject", "patient"] {
        if let Some(p) = r[f]["reference"]
            .as_str()
            .and_then(|s| s.strip_prefix("Patient/"))
        {
            return Some(p.to_owned());
        }
    }
    r["participant"].as_array()?.iter().find_map(|p| {
        p["actor"]["reference"]
            .as_str()?
            .strip_prefix("Patient/")
            .map(str::to_owned)
    })
}

const TYPES: [&str; 9] = [
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
    "Encounter",
    "DocumentReference",
    "Appointment",
];

#[tokio::test]
async fn a_parent_sees_each_child_and_switching_never_mixes_records() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let f = family(
        &sb,
        "maria",
        &["maria-garcia", "leo-garcia", "sofia-garcia"],
        RevocationPolicy::PurgeNow,
    )
    .await;
    let patients = f.sdk.patients().unwrap();
    assert_eq!(patients.len(), 3);
    let by_name = |n: &str| {
        patients
            .iter()
            .find(|p| p.name.as_deref() == Some(n))
            .unwrap()
            .clone()
    };
    let (maria, leo, sofia) = (
        by_name("Maria Garcia"),
        by_name("Leo Garcia"),
        by_name("Sofia Garcia"),
    );
    assert_eq!(maria.relation, Relation::Myself);
    assert_eq!(
        (leo.relation, leo.restricted),
        (Relation::Child, false),
        "9 years old: the whole record"
    );
    assert_eq!(
        (sofia.relation, sofia.restricted),
        (Relation::Child, true),
        "15: restricted, shown as such"
    );
    assert!(
        patients
            .iter()
            .all(|p| p.user_subject.as_deref() == Some("maria")),
        "grouped by the user's identity"
    );
    for (ctx, pid, confidential) in [
        (&leo, "leo-garcia", true),
        (&sofia, "sofia-garcia", false),
        (&maria, "maria-garcia", true),
    ] {
        f.sdk.switch_patient(&ctx.id).unwrap();
        assert_eq!(f.sdk.active_patient().unwrap().unwrap().id, ctx.id);
        let mut seen: Vec<(String, String)> = Vec::new();
        for ty in TYPES {
            for r in f.sdk.resources_of_active(ty).unwrap() {
                assert_eq!(
                    patient_of(&r).as_deref(),
                    Some(pid),
                    "{ty} of another patient while {pid} is active"
                );
                seen.push((ty.to_owned(), r["id"].as_str().unwrap().to_owned()));
            }
        }
        // Exactly the server's record as this proxy may see it: Sofia's confidential items never arrive.
        let mut want: Vec<(String, String)> = sb
            .admin()
            .truth(pid, confidential)
            .unwrap()
            .into_iter()
            .filter(|(t, _, _)| {
                TYPES.contains(&t.as_str()) || t == "DiagnosticReport" || t == "Procedure"
            })
            .filter(|(t, _, _)| TYPES.contains(&t.as_str()))
            .map(|(t, i, _)| (t, i))
            .collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want, "{pid}");
        let summary = f.sdk.summary().unwrap();
        assert_eq!(summary.patient.unwrap().id, pid);
    }
    // Leo's peanut allergy shows for Leo only.
    f.sdk.switch_patient(&leo.id).unwrap();
    assert!(
        f.sdk
            .allergies()
            .unwrap()
            .iter()
            .any(|a| a.substance.to_lowercase().contains("peanut"))
    );
    f.sdk.switch_patient(&maria.id).unwrap();
    assert!(
        !f.sdk
            .allergies()
            .unwrap()
            .iter()
            .any(|a| a.substance.to_lowercase().contains("peanut"))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn an_ended_proxy_authorization_revokes_and_purges_mid_session() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let f = family(
        &sb,
        "daniel",
        &["daniel-chen", "wei-chen"],
        RevocationPolicy::PurgeNow,
    )
    .await;
    let wei = f
        .sdk
        .patients()
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("Wei Chen"))
        .unwrap();
    assert_eq!(wei.relation, Relation::AdultUnderProxy);
    f.sdk.switch_patient(&wei.id).unwrap();
    assert!(!f.sdk.problems().unwrap().is_empty());
    sb.admin().end_proxy("daniel-chen", "wei-chen").unwrap();
    let err = f
        .sdk
        .sync_with(&wei.id, &fast(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err, Error::AccessRevoked);
    assert!(
        f.events
            .saw(|e| matches!(e, Event::AccessRevoked { account_id } if *account_id == wei.id))
    );
    let now = f
        .sdk
        .patients()
        .unwrap()
        .into_iter()
        .find(|p| p.id == wei.id)
        .unwrap();
    assert!(now.revoked);
    assert!(f.sdk.problems().unwrap().is_empty(), "purged at once");
    assert!(f.sdk.store().counts(&wei.id).unwrap().is_empty());
    // Daniel's own record is untouched.
    let daniel = f
        .sdk
        .patients()
        .unwrap()
        .into_iter()
        .find(|p| p.relation == Relation::Myself)
        .unwrap();
    f.sdk.switch_patient(&daniel.id).unwrap();
    assert!(!f.sdk.problems().unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_revoked_record_can_be_kept_read_only_until_confirmed() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let f = family(
        &sb,
        "maria",
        &["sofia-garcia"],
        RevocationPolicy::KeepReadOnlyUntilConfirmed,
    )
    .await;
    let sofia = f.sdk.patients().unwrap().remove(0);
    f.sdk.switch_patient(&sofia.id).unwrap();
    // Three years later Sofia is 18: her mother's proxy access ends.
    sb.admin().advance_clock(3 * 366 * 86_400);
    f.clock.advance_ms(1000);
    f.sdk.record_activity();
    sb.admin().expire_access_tokens(None).unwrap();
    assert_eq!(
        f.sdk
            .sync_with(&sofia.id, &fast(), &mut |_| {})
            .await
            .unwrap_err(),
        Error::AccessRevoked
    );
    assert!(f.sdk.patients().unwrap()[0].revoked);
    assert!(
        !f.sdk.immunizations().unwrap().is_empty(),
        "kept, read-only"
    );
    assert_eq!(
        f.sdk.sync(&sofia.id).await.unwrap_err(),
        Error::AccessRevoked,
        "no more syncing"
    );
    f.sdk.confirm_revoked(&sofia.id).await.unwrap();
    assert!(f.sdk.patients().unwrap().is_empty());
    assert!(f.sdk.store().counts(&sofia.id).unwrap().is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn locked_means_unreadable_and_unlock_carries_on() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let f = family(&sb, "ava", &["ava-thompson"], RevocationPolicy::PurgeNow).await;
    let ava = f.sdk.patients().unwrap().remove(0);
    f.sdk.switch_patient(&ava.id).unwrap();
    let before = f.sdk.lab_results().unwrap().len();
    // Ten idle minutes: a warning, then the lock.
    f.clock.advance_ms(9 * 60_000 + 1);
    f.sdk.tick();
    assert!(f.events.saw(|e| matches!(e, Event::LockWarning { .. })));
    f.clock.advance_ms(60_000);
    assert_eq!(f.sdk.lab_results().unwrap_err(), Error::Locked);
    assert!(f.events.saw(|e| *e == Event::Locked(LockReason::Idle)));
    for r in [
        f.sdk.patients().map(|_| ()),
        f.sdk.allergies().map(|_| ()),
        f.sdk.summary().map(|_| ()),
        f.sdk.lab_trend("4548-4").map(|_| ()),
    ] {
        assert_eq!(r.unwrap_err(), Error::Locked);
    }
    assert_eq!(f.sdk.sync(&ava.id).await.unwrap_err(), Error::Locked);
    assert_eq!(
        f.sdk.access_token(&ava.id).await.unwrap_err(),
        Error::Locked
    );
    f.sdk.unlock().unwrap();
    assert!(f.events.saw(|e| *e == Event::Unlocked));
    assert_eq!(f.sdk.lab_results().unwrap().len(), before);
    // Background for longer than the grace period.
    f.sdk.app_backgrounded();
    f.clock.advance_ms(60_000);
    f.sdk.app_foregrounded();
    assert_eq!(f.sdk.locked(), Some(LockReason::Background));
    f.sdk.unlock().unwrap();
    f.sdk.lock();
    assert_eq!(f.sdk.locked(), Some(LockReason::Explicit));
    sb.shutdown().await;
}

#[tokio::test]
async fn the_lock_stops_a_running_sync_which_resumes_after_unlock() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let f = family(&sb, "daniel", &[], RevocationPolicy::PurgeNow).await;
    // Link without syncing, then start the first (long) sync and lock it after a few pages.
    let sdk = {
        let host = Host {
            secure_store: Arc::new(MemorySecureStore::default()),
            browser: Some(Arc::new(RobotQueue(Mutex::new(vec![
                PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen")),
            ])))),
            clock: f.clock.clone(),
            listener: None,
        };
        Arc::new(
            ChartLink::new(
                AppConfig::new("chartlink-demo", "chartlink-demo://callback"),
                host,
            )
            .unwrap(),
        )
    };
    let account = sdk.link(&sb.fhir_base()).await.unwrap();
    let opts = SyncOptions {
        page_size: 20,
        ..fast()
    };
    let mut pages = 0;
    let locker = sdk.clone();
    let err = sdk
        .sync_with(&account.id, &opts, &mut |p| {
            if p.pages > 0 {
                pages += 1;
                if pages == 5 {
                    locker.lock();
                }
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err, Error::Locked);
    sdk.unlock().unwrap();
    let report = sdk
        .sync_with(&account.id, &opts, &mut |_| {})
        .await
        .unwrap();
    assert!(report.full_pass);
    let keys = sdk.account_keys(&account.id).unwrap();
    let got: Vec<(String, String)> = sdk
        .store()
        .inventory(&keys, &account.id)
        .unwrap()
        .into_iter()
        .map(|(t, i, _)| (t, i))
        .collect();
    let want: Vec<(String, String)> = sb
        .admin()
        .truth("daniel-chen", true)
        .unwrap()
        .into_iter()
        .filter(|(t, _, _)| t != "Binary")
        .map(|(t, i, _)| (t, i))
        .collect();
    assert_eq!(got, want);
    sb.shutdown().await;
}

#[tokio::test]
async fn one_person_at_two_providers_is_one_patient_whose_records_keep_their_source() {
    // Two EHRs serving the same person (the same seed generates the same family at both).
    let (a, b) = (
        Sandbox::start(Config::default()).await.unwrap(),
        Sandbox::start(Config::default()).await.unwrap(),
    );
    let robots = vec![
        PortalRobot::allowing("ava", "ava-demo", None),
        PortalRobot::allowing("ava", "ava-demo", None),
    ];
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: Some(Arc::new(RobotQueue(Mutex::new(robots)))),
        clock: Arc::new(ManualClock::new()),
        listener: None,
    };
    let sdk = ChartLink::new(
        AppConfig::new("chartlink-demo", "chartlink-demo://callback"),
        host,
    )
    .unwrap();
    for sb in [&a, &b] {
        let account = sdk.link(&sb.fhir_base()).await.unwrap();
        sdk.sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
    }
    // Never merged on a guess (the OpenID subjects are issuer-specific, here they are even equal): suggested from
    // the records, merged once the user confirms.
    let before = sdk.patients().unwrap();
    assert_eq!(before.len(), 2, "not merged before the user says so");
    let suggestions = sdk.merge_suggestions().unwrap();
    assert_eq!(suggestions.len(), 1, "{suggestions:?}");
    let merged = sdk.confirm_merge(&suggestions[0].context_ids).unwrap();
    assert_eq!(merged.account_ids.len(), 2);
    assert!(
        sdk.merge_suggestions().unwrap().is_empty(),
        "merged already"
    );
    let patients = sdk.patients().unwrap();
    assert_eq!(patients.len(), 1, "one person, linked twice");
    assert_eq!(patients[0].account_ids.len(), 2);
    sdk.switch_patient(&patients[0].id).unwrap();
    let immunizations = sdk.immunizations().unwrap();
    let sources: std::collections::BTreeSet<String> = immunizations
        .iter()
        .filter_map(|i| i.source.clone())
        .collect();
    assert_eq!(
        sources,
        [a.fhir_base(), b.fhir_base()].into_iter().collect(),
        "each record keeps its provider"
    );
    let per_provider = immunizations
        .iter()
        .filter(|i| i.source.as_deref() == Some(a.fhir_base().as_str()))
        .count();
    assert_eq!(immunizations.len(), 2 * per_provider);
    // Undone: two patients again, each with its own record.
    sdk.split_patient(&patients[0].id).unwrap();
    assert_eq!(sdk.patients().unwrap().len(), 2);
    a.shutdown().await;
    b.shutdown().await;
}

mod interleavings {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Switch(usize),
        Sync(usize),
        Read(usize),
        Lock,
        Unlock,
        Idle,
        Revoke(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3usize).prop_map(Op::Switch),
            1 => (0..3usize).prop_map(Op::Sync),
            14 => (0..TYPES.len()).prop_map(Op::Read),
            2 => Just(Op::Lock),
            3 => Just(Op::Unlock),
            1 => Just(Op::Idle),
            1 => (0..3usize).prop_map(Op::Revoke),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, max_shrink_iters: 0, failure_persistence: None, ..ProptestConfig::default() })]

        /// 10 runs of 1,000 random steps: 0 reads of another context's data, 0 reads while locked, 0 panics.
        #[test]
        fn random_interleavings_never_leak(ops in proptest::collection::vec(op(), 1000)) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let sb = Sandbox::start(Config::default()).await.unwrap();
                let f = family(&sb, "maria", &["maria-garcia", "leo-garcia", "sofia-garcia"], RevocationPolicy::PurgeNow).await;
                let contexts = f.sdk.patients().unwrap();
                let pids: Vec<String> = contexts.iter().map(|c| match c.name.as_deref() {
                    Some("Leo Garcia") => "leo-garcia".to_owned(),
                    Some("Sofia Garcia") => "sofia-garcia".to_owned(),
                    _ => "maria-garcia".to_owned(),
                }).collect();
                // The first link became the active patient.
                let first = f.sdk.active_patient().unwrap().map(|a| a.id);
                let mut active: Option<usize> = contexts.iter().position(|c| Some(&c.id) == first.as_ref());
                let mut locked = false;
                let (mut reads, mut records) = (0, 0);
                for op in ops {
                    match op {
                        Op::Switch(i) => match f.sdk.switch_patient(&contexts[i].id) {
                            Ok(c) => { assert!(!locked); assert_eq!(c.id, contexts[i].id); active = Some(i); }
                            Err(Error::Locked) => assert!(locked),
                            Err(e) => panic!("switch: {e:?}"),
                        },
                        Op::Sync(i) => match f.sdk.sync_with(&contexts[i].id, &fast(), &mut |_| {}).await {
                            Ok(_) => assert!(!locked),
                            Err(Error::Locked) => assert!(locked),
                            Err(Error::AccessRevoked) => {}
                            Err(e) => panic!("sync: {e:?}"),
                        },
                        Op::Read(t) => match f.sdk.resources_of_active(TYPES[t]) {
                            Ok(rows) => {
                                assert!(!locked, "a read succeeded while locked");
                                let i = active.expect("a read with no active patient must fail");
                                for r in &rows {
                                    assert_eq!(patient_of(r).as_deref(), Some(pids[i].as_str()), "another context's data");
                                }
                                reads += 1;
                                records += rows.len();
                            }
                            Err(Error::Locked) => assert!(locked),
                            Err(Error::InvalidInput(_)) => assert!(active.is_none()),
                            Err(e) => panic!("read: {e:?}"),
                        },
                        Op::Lock => { f.sdk.lock(); locked = true; }
                        Op::Unlock => { f.sdk.unlock().unwrap(); locked = false; }
                        Op::Idle => {
                            f.clock.advance_ms(11 * 60_000);
                            f.sdk.tick();
                            locked = true;
                        }
                        Op::Revoke(i) => {
                            // The patient removes the app on the portal; the next sync notices.
                            let grants = sb.admin().grants().unwrap();
                            if let Some(g) = grants.iter().find(|g| g.patient_id == pids[i] && g.revoked_at.is_none()) {
                                sb.admin().revoke_grant(&g.id).unwrap();
                            }
                        }
                    }
                    if !locked {
                        f.sdk.record_activity();
                    }
                }
                assert!(reads > 0 && records > 0, "the run exercised reads");
                sb.shutdown().await;
            });
        }
    }
}
