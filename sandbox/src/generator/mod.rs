//! The synthetic demo population: three households and their charts as FHIR R4 resources, shaped like what a US
//! EHR patient API serves. Maria Garcia sees her children Leo (9) and Sofia (15, with confidential adolescent items);
//! Daniel Chen holds power of attorney for his father Wei (83); Ava Thompson (16) has her own login. Charts hold
//! years of lab panels with trends, vitals, immunizations, medications, problems, allergies, procedures, visits,
//! clinical notes with their Binary content, and booked appointments.
//!
//! Generation is a pure function of `(seed, today, large_patient)`: one ChaCha8 stream per patient, no clock and no
//! hash-map iteration order, so every sandbox started with the same arguments serves byte-identical data. The seed
//! varies values, dates and optional items; the people, their ids, logins and relationships never change. Ages are
//! anchored to `today`, and nothing is dated after it except booked appointments.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::ops::Range;
use time::{Date, Duration, Month, PrimitiveDateTime as DateTime, Time};

/// Everything the generator made: the people who can log in or be seen, and every resource of their charts.
#[derive(Debug)]
pub struct Population {
    /// Everyone with a chart, in a fixed order: the family, then the large patient if asked for.
    pub people: Vec<Person>,
    /// Every resource, including the Practitioners (in no patient compartment) and the RelatedPersons.
    pub resources: Vec<serde_json::Value>,
}

/// One patient of the population, with their portal login and the other records they may see.
#[derive(Debug, Clone)]
pub struct Person {
    /// FHIR id of their Patient resource.
    pub patient_id: String,
    /// Given and family name, e.g. "Maria Garcia".
    pub display_name: String,
    /// Chosen so that the stated age holds for months around `today`.
    pub birth_date: time::Date,
    /// None for a child who has no portal login of their own.
    pub login: Option<Login>,
    /// Records this person may see besides their own.
    pub proxy_for: Vec<ProxyLink>,
}

/// A portal username and its password (demo data: both are public).
#[derive(Debug, Clone)]
pub struct Login {
    /// The portal username, e.g. "maria".
    pub username: String,
    /// The portal password, e.g. "maria-demo".
    pub password: String,
}

/// Access to another patient's record, and the RelatedPerson that stands for the proxy inside that record.
#[derive(Debug, Clone)]
pub struct ProxyLink {
    /// The Patient id of the record seen.
    pub patient_id: String,
    /// Why the proxy may see it.
    pub kind: ProxyKind,
    /// The RelatedPerson (in the seen record) that is the proxy; its `patient` is `patient_id`.
    pub related_person_id: String,
}

/// Why a proxy may see a record: a parent of a minor, or a legal representative such as a power of attorney.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// A parent of a minor; from the child's 13th birthday, items marked confidential are hidden from them.
    Parent,
    /// A legal representative of an adult, e.g. a power of attorney.
    LegalProxy,
}

/// Makes the population. `today` anchors ages and history; `large_patient` adds one extra patient (login
/// "large"/"large-demo", patient id "large-patient") with about that many resources, mostly lab results, for
/// benchmarks (e.g. 50_000); below about 110 it gets the smallest chart the story allows.
pub fn generate(seed: u64, today: time::Date, large_patient: Option<usize>) -> Population {
    let mut resources: Vec<Value> = CLINICIANS.iter().map(|c| practitioner(c, today)).collect();
    let mut people = Vec::new();
    let members = FAMILY
        .iter()
        .map(|m| (m, 0))
        .chain(large_patient.map(|n| (&LARGE, n)));
    for (stream, (member, target)) in (0u64..).zip(members) {
        let mut chart = Chart::new(seed, stream, today, member, &mut resources);
        if target > 0 {
            // About 2,500 resources per year of history: 20 years for 50,000.
            chart.years = i32::try_from(target / 2500).unwrap_or(20).clamp(1, 20);
        }
        chart.fill();
        chart.top_up(target);
        people.push(person(member, chart.birth));
    }
    for link in &PROXIES {
        let seen = people.iter().find(|p| p.patient_id == link.patient);
        if let (Some(proxy), Some(seen)) = (FAMILY.iter().find(|m| m.id == link.proxy), seen) {
            resources.push(related_person(link, proxy, seen.birth_date, today));
        }
    }
    Population { people, resources }
}

fn person(member: &Member, birth: Date) -> Person {
    let links = PROXIES.iter().filter(|p| p.proxy == member.id);
    Person {
        patient_id: member.id.into(),
        display_name: format!("{} {}", member.given, member.family),
        birth_date: birth,
        login: member.login.map(|(u, p)| Login {
            username: u.into(),
            password: p.into(),
        }),
        proxy_for: (links.map(|p| ProxyLink {
            patient_id: p.patient.into(),
            kind: p.kind,
            related_person_id: p.id.into(),
        }))
        .collect(),
    }
}

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const UCUM: &str = "http://unitsofmeasure.org";
const MRN: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const MED_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-category";
const DOC_CATEGORY: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";

/// A code and its display.
type Code = (&'static str, &'static str);

#[rustfmt::skip]
mod catalog;
use catalog::*;

/// Why a patient came in; decides the encounter type, the reason, the note and what is done at the visit.
#[derive(Clone, Copy)]
enum VisitKind {
    WellChild(i32),
    Checkup,
    FollowUp(Diagnosis),
    Sick(Diagnosis),
}

impl VisitKind {
    fn describe(self) -> String {
        match self {
            VisitKind::WellChild(m) if m < 24 => format!("well child visit ({m} months)"),
            VisitKind::WellChild(m) => format!("well child visit ({} years)", m / 12),
            VisitKind::Checkup => "annual physical".into(),
            VisitKind::FollowUp(d) => format!("follow-up of {}", d.snomed.1.to_lowercase()),
            VisitKind::Sick(d) => d.snomed.1.to_lowercase(),
        }
    }

    fn plan(self) -> String {
        match self {
            VisitKind::WellChild(_) => "Growth and development normal for age.".into(),
            VisitKind::Checkup => "Preventive care reviewed. Continue current medications.".into(),
            VisitKind::FollowUp(d) => format!("{} stable on current treatment.", d.snomed.1),
            VisitKind::Sick(_) => "Fluids and rest. Return if not better in 7 days.".into(),
        }
    }
}

/// The encounter in progress: what is recorded meanwhile references it.
struct OpenVisit {
    id: String,
    start: DateTime,
    end: DateTime,
}

/// One patient's chart under construction: their random stream, id sequence, the visit in progress, and the
/// population it writes into.
struct Chart<'a> {
    member: &'static Member,
    rng: ChaCha8Rng,
    today: Date,
    birth: Date,
    years: i32,
    seq: usize,
    /// Resources this chart added so far.
    added: usize,
    out: &'a mut Vec<Value>,
    last_draw: Vec<Option<Date>>,
    visit: Option<OpenVisit>,
    /// While set, everything added carries the restricted confidentiality label.
    confidential: bool,
    past_visits: Vec<(DateTime, DateTime, String)>,
}

impl<'a> Chart<'a> {
    fn new(
        seed: u64,
        stream: u64,
        today: Date,
        member: &'static Member,
        out: &'a mut Vec<Value>,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let birth = add_months(today, -12 * member.age) - Duration::days(member.days_past_birthday);
        Chart {
            member,
            rng,
            today,
            birth,
            years: member.story.years,
            seq: 0,
            added: 0,
            out,
            last_draw: vec![None; member.story.panels.len()],
            visit: None,
            confidential: false,
            past_visits: Vec::new(),
        }
    }

    /// Writes the whole chart. The order of the steps decides ids and random draws: changing it changes the data.
    fn fill(&mut self) {
        self.patient();
        self.problems_and_allergies();
        self.prescriptions();
        self.procedures();
        self.vaccinations();
        for (day, kind) in self.visit_plan() {
            self.visit(day, kind);
        }
        self.confidential_visit();
        self.untidy_items();
        self.appointments();
    }

    /// Start of the history: birth for children, `years` back for adults.
    fn start(&self) -> Date {
        match self.member.story.years {
            0 => self.birth,
            _ => add_months(self.today, -12 * self.years),
        }
    }

    fn months_ago(&self, months: i32) -> Date {
        add_months(self.today, -months).max(self.birth)
    }

    /// How far `day` is through the history, from 0 at its start to 1 today (drives trends).
    fn progress(&self, day: Date) -> f64 {
        let span = (self.today - self.start()).whole_days().max(1) as f64;
        ((day - self.start()).whole_days() as f64 / span).clamp(0.0, 1.0)
    }

    fn normal(&mut self) -> f64 {
        let (u, v): (f64, f64) = (1.0 - self.rng.random::<f64>(), self.rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn days(&mut self, range: Range<i64>) -> Duration {
        Duration::days(self.rng.random_range(range))
    }

    fn minutes(&mut self, range: Range<i64>) -> Duration {
        Duration::minutes(self.rng.random_range(range))
    }

    /// A clinic slot on `day`: 08:00 to 16:15, on the quarter hour.
    fn slot(&mut self, day: Date) -> DateTime {
        at(day, 8 * 60 + 15 * self.rng.random_range(0..34))
    }

    /// When something happens on `day`: during the visit in progress, if any, otherwise at a clinic slot.
    fn during(&mut self, day: Date) -> DateTime {
        match &self.visit {
            Some(v) => v.start,
            None => self.slot(day),
        }
    }

    fn new_id(&mut self, ty: &str) -> String {
        self.seq += 1;
        let prefix = match ty {
            "Observation" => "obs",
            "DiagnosticReport" => "dr",
            "Encounter" => "enc",
            "Condition" => "cond",
            "MedicationRequest" => "med",
            "AllergyIntolerance" => "allergy",
            "Immunization" => "imm",
            "Procedure" => "proc",
            "DocumentReference" => "doc",
            "Binary" => "bin",
            _ => "appt",
        };
        format!("{prefix}-{}-{:06}", self.member.id, self.seq)
    }

    fn add(&mut self, ty: &str, updated: DateTime, body: Value) -> String {
        let id = self.new_id(ty);
        self.put(ty, &id, updated, body);
        id
    }

    /// Completes a resource with type, id, meta (and the restricted label when confidential), the patient under
    /// the element its type uses and the visit in progress, then adds it to the population.
    fn put(&mut self, ty: &str, id: &str, updated: DateTime, mut body: Value) {
        body["resourceType"] = json!(ty);
        body["id"] = json!(id);
        body["meta"] = json!({"versionId": "1", "lastUpdated": instant(updated)});
        if self.confidential {
            let label = json!({"system": CONFIDENTIALITY, "code": "R", "display": "restricted"});
            body["meta"]["security"] = Value::Array(vec![label]);
        }
        let m = self.member;
        let name = format!("{} {}", m.given, m.family);
        let patient = json!({"reference": format!("Patient/{}", m.id), "display": name});
        match ty {
            "AllergyIntolerance" | "Immunization" => body["patient"] = patient,
            "Binary" | "Appointment" | "Patient" => {}
            _ => body["subject"] = patient,
        }
        if let Some(v) = &self.visit {
            let encounter = json!({"reference": format!("Encounter/{}", v.id)});
            match ty {
                "Observation" | "DiagnosticReport" | "MedicationRequest" | "Immunization" => {
                    body["encounter"] = encounter;
                }
                "DocumentReference" => {
                    body["context"] =
                        json!({"encounter": [encounter], "period": period(v.start, v.end)});
                }
                _ => {}
            }
        }
        self.out.push(body);
        self.added += 1;
    }

    fn patient(&mut self) {
        let m = self.member;
        let phone_use = if m.age >= 18 { "mobile" } else { "home" };
        let body = json!({
            "active": true,
            "identifier": [{"use": "usual", "type": {"text": "MRN"}, "system": MRN, "value": m.mrn}],
            "name": [{"use": "official", "text": format!("{} {}", m.given, m.family), "family": m.family,
                "given": [m.given]}],
            "gender": m.gender,
            "birthDate": self.birth.to_string(),
            "address": [{"use": "home", "line": [m.line], "city": m.city, "state": "WI", "country": "US"}],
            "telecom": [{"system": "phone", "value": m.phone, "use": phone_use}],
            "generalPractitioner": [practitioner_ref(&m.story.clinician)],
        });
        self.put("Patient", m.id, at(self.start(), 9 * 60), body);
    }

    fn problems_and_allergies(&mut self) {
        for (diagnosis, onset, resolved) in self.member.story.conditions {
            let resolved = resolved.map(|r| self.months_ago(r));
            self.condition(diagnosis, self.months_ago(*onset), resolved);
        }
        for (a, months) in self.member.story.allergies {
            let recorded = at(self.months_ago(*months), 10 * 60 + 12);
            let body = json!({
                "clinicalStatus": concept(ALLERGY_CLINICAL, ("active", "Active")),
                "verificationStatus": concept(ALLERGY_VERIFICATION, ("confirmed", "Confirmed")),
                "type": "allergy", "category": [a.category], "criticality": a.criticality,
                "code": concept(a.code.0, a.code.1),
                "recordedDate": instant(recorded),
                "reaction": [{"manifestation": [concept(SNOMED, a.reaction)], "severity": a.severity}],
            });
            self.add("AllergyIntolerance", recorded, body);
        }
    }

    fn condition(&mut self, d: &Diagnosis, onset: Date, resolved: Option<Date>) {
        let recorded = match &self.visit {
            Some(v) => v.end,
            None => at(onset, 11 * 60) + self.days(0..4),
        };
        let status = match resolved {
            Some(_) => ("resolved", "Resolved"),
            None => ("active", "Active"),
        };
        let mut body = json!({
            "clinicalStatus": concept(CONDITION_CLINICAL, status),
            "verificationStatus": concept(CONDITION_VERIFICATION, ("confirmed", "Confirmed")),
            "category": [concept(CONDITION_CATEGORY, ("problem-list-item", "Problem List Item"))],
            "code": diagnosis_concept(d),
            "onsetDateTime": onset.to_string(),
            "recordedDate": instant(recorded),
        });
        if let Some(end) = resolved {
            body["abatementDateTime"] = json!(end.to_string());
        }
        self.add("Condition", recorded, body);
    }

    /// Chronic medications, reordered yearly: earlier orders completed, the last active (or stopped).
    fn prescriptions(&mut self) {
        let story = &self.member.story;
        for (med, start, stop) in story.meds {
            let last = stop.map_or(self.today, |s| self.months_ago(s));
            let mut day = self.months_ago(*start);
            while day < last {
                let next = add_months(day, 12);
                let status = match (next < last, stop) {
                    (true, _) => "completed",
                    (false, Some(_)) => "stopped",
                    (false, None) => "active",
                };
                self.prescribe(med, day, status, &story.clinician);
                day = next;
            }
        }
    }

    fn prescribe(&mut self, med: &Med, day: Date, status: &str, by: &Clinician) {
        let authored = self.during(day) + Duration::minutes(25);
        let (frequency, period, unit) = med.timing;
        let (quantity, form, days, refills) = med.dispense;
        let validity = json!({"start": day.to_string(), "end": add_months(day, 12).to_string()});
        let body = json!({
            "status": status, "intent": "order",
            "category": [concept(MED_CATEGORY, ("community", "Community"))],
            "medicationCodeableConcept": concept(RXNORM, med.code),
            "authoredOn": instant(authored),
            "requester": practitioner_ref(by),
            "dosageInstruction": [{"text": med.sig, "asNeededBoolean": med.as_needed,
                "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": unit}}}],
            "dispenseRequest": {
                "validityPeriod": validity,
                "numberOfRepeatsAllowed": refills,
                "quantity": {"value": quantity, "unit": form},
                "expectedSupplyDuration": {"value": days, "unit": "days", "system": UCUM, "code": "d"},
            },
        });
        self.add("MedicationRequest", authored, body);
    }

    fn procedures(&mut self) {
        for (p, by, months) in self.member.story.procedures {
            let start = self.slot(self.months_ago(*months));
            let mut body = json!({"status": "completed", "code": concept(SNOMED, p.code),
                "performer": [{"actor": practitioner_ref(by)}]});
            match p.minutes {
                Some(m) => body["performedPeriod"] = period(start, start + Duration::minutes(m)),
                None => body["performedDateTime"] = json!(instant(start)),
            }
            self.add("Procedure", start + Duration::hours(2), body);
        }
    }

    /// Vaccines given outside the well-child schedule: influenza most autumns, COVID-19 in 2021, the story's own.
    fn vaccinations(&mut self) {
        let (start, today) = (self.start(), self.today);
        let flu = if self.member.age >= 18 {
            FLU_ADULT
        } else {
            FLU_CHILD
        };
        for year in start.year()..=today.year() {
            let october = Date::from_calendar_date(year, Month::October, 1).unwrap_or(today);
            let day = october + self.days(0..45);
            let eligible = day >= start && day >= self.birth + Duration::days(183) && day < today;
            if eligible && self.rng.random_bool(0.85) {
                self.immunize(flu, day);
            }
        }
        let teen = add_months(self.birth, 144);
        for (month, dom) in [(Month::April, 12), (Month::May, 3)] {
            let day = Date::from_calendar_date(2021, month, dom).unwrap_or(today);
            if day >= start.max(teen) && day < today {
                let day = day + self.days(0..10);
                self.immunize(COVID, day);
            }
        }
        for (vaccine, months) in self.member.story.vaccines {
            self.immunize(*vaccine, self.months_ago(*months));
        }
    }

    fn immunize(&mut self, vaccine: Code, day: Date) {
        let given = self.during(day) + Duration::minutes(30);
        let letters = b"ABCDEFGHJKLMNPRSTUVWXYZ";
        let mut letter = |_| char::from(letters[self.rng.random_range(0..letters.len())]);
        let prefix: String = (0..2).map(&mut letter).collect();
        let lot = format!("{prefix}{}", self.rng.random_range(1000..10000));
        let body = json!({"status": "completed", "vaccineCode": concept(CVX, vaccine),
            "occurrenceDateTime": instant(given), "primarySource": true, "lotNumber": lot});
        self.add("Immunization", given, body);
    }

    /// The visits of the history in date order: the well-child schedule and sick visits for children; for
    /// adults a check-up each year and otherwise follow-ups of active problems.
    fn visit_plan(&mut self) -> Vec<(Date, VisitKind)> {
        let (story, birth) = (&self.member.story, self.birth);
        let mut plan = Vec::new();
        if story.years == 0 {
            let yearly = (4..=self.member.age).map(|y| y * 12);
            for months in WELL_CHILD_MONTHS.into_iter().chain(yearly) {
                let late = if months == 0 {
                    Duration::days(4)
                } else {
                    self.days(0..12)
                };
                plan.push((
                    add_months(birth, months) + late,
                    VisitKind::WellChild(months),
                ));
            }
            for year in 0..self.member.age {
                for _ in 0..self.rng.random_range(0..=2) {
                    let day = add_months(birth, 12 * year) + self.days(20..340);
                    plan.push((day, self.reason(day, 0.3)));
                }
            }
        } else {
            let every = 365 / i64::from(story.visits_per_year.max(1));
            for k in 0..i64::from(self.years * story.visits_per_year) {
                let day = self.start() + Duration::days(14 + k * every) + self.days(-10..11);
                let kind = match k % i64::from(story.visits_per_year) {
                    0 => VisitKind::Checkup,
                    _ => self.reason(day, 0.85),
                };
                plan.push((day, kind));
            }
        }
        plan.retain(|(day, _)| *day <= self.today - Duration::days(7));
        plan.sort_by_key(|(day, _)| *day);
        plan
    }

    /// A follow-up of a problem active on `day` (with probability `chronic`), otherwise a common acute illness.
    fn reason(&mut self, day: Date, chronic: f64) -> VisitKind {
        let conditions = self.member.story.conditions.iter();
        let active: Vec<Diagnosis> = conditions
            .filter(|(_, onset, end)| self.months_ago(*onset) <= day && end.is_none())
            .map(|(d, _, _)| *d)
            .collect();
        if !active.is_empty() && self.rng.random_bool(chronic) {
            VisitKind::FollowUp(active[self.rng.random_range(0..active.len())])
        } else {
            VisitKind::Sick(SICK_REASONS[self.rng.random_range(0..SICK_REASONS.len())])
        }
    }

    /// One visit: encounter, vitals, what the schedule calls for (vaccines, labs, smoking status, antibiotics)
    /// and, always for preventive visits and often otherwise, a note.
    fn visit(&mut self, day: Date, kind: VisitKind) {
        let by = self.member.story.clinician;
        let start = self.encounter(kind, day, &by);
        let mut done = self.vitals(start + Duration::minutes(8));
        if let VisitKind::WellChild(months) = kind {
            for (vaccine, ages) in CHILDHOOD {
                if ages.contains(&months) {
                    self.immunize(vaccine, day);
                    done.push(format!("{} vaccine given", vaccine.1));
                }
            }
            if months == 12 || months == 24 {
                self.panel(&LEAD_SCREEN, start + Duration::minutes(30));
                done.push("Lead screening drawn".into());
            }
        }
        if let (VisitKind::Checkup, Some(status)) = (kind, self.member.story.smoking) {
            let body = json!({"valueCodeableConcept": concept(SNOMED, status)});
            self.observation(SOCIAL_HISTORY, SMOKING, start, body);
        }
        for (i, (panel, months)) in self.member.story.panels.iter().enumerate() {
            let due = |last: Date| (day - last).whole_days() >= months * 30 - 20;
            if self.last_draw[i].is_none_or(due) {
                self.last_draw[i] = Some(day);
                self.panel(panel, start + Duration::minutes(35));
                done.push(format!("Labs drawn: {}", panel.short));
            }
        }
        if matches!(kind, VisitKind::Sick(d) if d == OTITIS) {
            self.prescribe(&AMOXICILLIN, day, "completed", &by);
            done.push("Amoxicillin prescribed for 10 days".into());
        }
        let what = kind.describe();
        let seen = format!(
            "{} was seen by Dr. {} {} for {what}.",
            self.member.given, by.given, by.family
        );
        let paragraphs = [seen, kind.plan()];
        match kind {
            VisitKind::WellChild(_) | VisitKind::Checkup => {
                self.note(("34133-9", "After Visit Summary"), &by, &paragraphs, &done);
            }
            _ if self.rng.random_bool(0.5) => {
                self.note(("11506-3", "Progress note"), &by, &paragraphs, &done);
            }
            _ => {}
        }
        if let Some(v) = self.visit.take() {
            self.past_visits.push((v.start, v.end, what));
        }
    }

    /// Opens a visit on `day` with its Encounter; returns when it starts.
    fn encounter(&mut self, kind: VisitKind, day: Date, by: &Clinician) -> DateTime {
        let start = self.slot(day);
        let end = start + self.minutes(20..46);
        let (code, reason) = match kind {
            VisitKind::WellChild(_) => (WELL_CHILD_VISIT, concept(ICD10, CHILD_EXAM)),
            VisitKind::Checkup => (CHECK_UP, concept(ICD10, ADULT_EXAM)),
            VisitKind::FollowUp(d) => (FOLLOW_UP, diagnosis_concept(&d)),
            VisitKind::Sick(d) if self.confidential => (CONSULTATION, diagnosis_concept(&d)),
            VisitKind::Sick(d) => (SYMPTOM_VISIT, diagnosis_concept(&d)),
        };
        let body = json!({
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": [concept(SNOMED, code)],
            "participant": [{"individual": practitioner_ref(by)}],
            "period": period(start, end),
            "reasonCode": [reason],
            "serviceProvider": {"display": by.clinic},
        });
        let id = self.add("Encounter", end + Duration::minutes(30), body);
        self.visit = Some(OpenVisit { id, start, end });
        start
    }

    /// Takes the vital signs of a visit; returns them as lines for the note.
    fn vitals(&mut self, t: DateTime) -> Vec<String> {
        let age = (t.date() - self.birth).whole_days() as f64 / 365.25;
        let p = self.progress(t.date());
        let (height, weight, bp) = match &self.member.story.body {
            Body::Adult(a) => {
                let ((s0, d0), (s1, d1)) = a.bp;
                let weight = a.weight.0 + (a.weight.1 - a.weight.0) * p + 0.8 * self.normal();
                (
                    a.height + 0.3 * self.normal(),
                    weight,
                    Some((s0 + (s1 - s0) * p, d0 + (d1 - d0) * p)),
                )
            }
            Body::Child(size) => {
                let (h, w) = growth(age);
                let bp = (age >= 3.0).then_some((92.0 + 1.6 * age, 56.0 + age));
                let (h_noise, w_noise) = (0.01 * self.normal(), 0.03 * self.normal());
                (
                    h * size * (1.0 + h_noise),
                    w * size * size * (1.0 + w_noise),
                    bp,
                )
            }
        };
        let (height, weight) = (round(height, 1), round(weight, 1));
        let bmi = (age >= 2.0).then(|| weight / (height / 100.0).powi(2));
        let pulse =
            (if age < 10.0 { 135.0 - 6.0 * age } else { 72.0 } + 6.0 * self.normal()).round();
        let measures = [
            (WEIGHT, Some(weight), 1, "kg"),
            (HEIGHT, Some(height), 1, "cm"),
            (BMI, bmi, 1, "kg/m2"),
            (HEART_RATE, Some(pulse), 0, "/min"),
        ];
        for (code, value, decimals, unit) in measures {
            if let Some(value) = value {
                let body = json!({"valueQuantity": quantity(value, decimals, unit)});
                self.observation(VITAL_SIGNS, code, t, body);
            }
        }
        let mut lines = vec![format!(
            "Weight {weight} kg, height {height} cm, pulse {pulse}/min"
        )];
        if let Some((sys, dia)) = bp {
            let sys = (sys + 6.0 * self.normal()).round();
            let dia = (dia + 4.0 * self.normal()).round();
            let part = |code, v| json!({"code": concept(LOINC, code), "valueQuantity": quantity(v, 0, "mm[Hg]")});
            let body = json!({"component": [part(SYSTOLIC, sys), part(DIASTOLIC, dia)]});
            self.observation(VITAL_SIGNS, BLOOD_PRESSURE, t, body);
            lines.push(format!("Blood pressure {sys}/{dia} mmHg"));
        }
        lines
    }

    /// Records an Observation taken at `t`; `value` holds the value elements (and any flag and range).
    /// Hot paths insert built parts with `body[key] = part`: `json!` would deep-copy an embedded `Value`.
    fn observation(&mut self, category: Code, code: Code, t: DateTime, value: Value) -> String {
        let issued = t + match category {
            LABORATORY => self.minutes(180..1800),
            _ => Duration::minutes(2),
        };
        let mut body = value;
        body["status"] = json!("final");
        body["category"] = Value::Array(vec![concept(OBS_CATEGORY, category)]);
        body["code"] = concept(LOINC, code);
        body["effectiveDateTime"] = json!(instant(t));
        body["issued"] = json!(instant(issued));
        self.add("Observation", issued, body)
    }

    /// Draws a panel: one Observation per lab (following the story's trend, if any) and a DiagnosticReport.
    fn panel(&mut self, panel: &Panel, drawn: DateTime) {
        let p = self.progress(drawn.date());
        let mut results = Vec::new();
        for lab in panel.labs {
            let trends = self.member.story.trends;
            let trend = trends.iter().find(|t| t.loinc == lab.loinc);
            let (center, noise) = match trend {
                Some(t) => (t.start + (t.end - t.start) * p, t.noise),
                None => (lab.typical, (lab.high - lab.low) / 6.0),
            };
            let value = (center + noise * self.normal()).max(lab.typical * 0.2);
            let code = (lab.loinc, lab.display);
            let id = self.observation(LABORATORY, code, drawn, measured(lab, value));
            results.push(json!({"reference": format!("Observation/{id}"), "display": lab.display}));
        }
        self.report(panel.code, drawn, results);
    }

    fn report(&mut self, code: Code, drawn: DateTime, results: Vec<Value>) {
        let issued = drawn + Duration::hours(30);
        let mut body = json!({
            "status": "final",
            "effectiveDateTime": instant(drawn),
            "issued": instant(issued),
            "performer": [{"display": "Lakeview Medical Laboratory"}],
        });
        body["category"] = Value::Array(vec![concept(DIAGNOSTIC_SERVICE, ("LAB", "Laboratory"))]);
        body["code"] = concept(LOINC, code);
        body["result"] = Value::Array(results);
        self.add("DiagnosticReport", issued, body);
    }

    /// Writes the visit's note: a DocumentReference and the Binary holding its text, plain or simple HTML.
    fn note(
        &mut self,
        (code, title): Code,
        by: &Clinician,
        paragraphs: &[String],
        items: &[String],
    ) {
        let html = self.rng.random_bool(0.5);
        let text = if html {
            let ps: String = paragraphs.iter().map(|p| format!("<p>{p}</p>")).collect();
            let lis: String = items.iter().map(|i| format!("<li>{i}</li>")).collect();
            format!("<html><body><h1>{title}</h1>{ps}<ul>{lis}</ul></body></html>")
        } else {
            let lines: String = items.iter().map(|i| format!("- {i}\n")).collect();
            format!("{title}\n\n{}\n\n{lines}", paragraphs.join("\n\n"))
        };
        let content_type = if html { "text/html" } else { "text/plain" };
        let (doc, bin) = (self.new_id("DocumentReference"), self.new_id("Binary"));
        let end = self.visit.as_ref().map_or(at(self.today, 0), |v| v.end);
        let signed = instant(end + self.minutes(20..240));
        let attachment = json!({"contentType": content_type, "url": format!("Binary/{bin}"), "title": title,
            "creation": signed});
        let body = json!({
            "status": "current", "docStatus": "final",
            "type": concept(LOINC, (code, title)),
            "category": [concept(DOC_CATEGORY, ("clinical-note", "Clinical Note"))],
            "date": signed,
            "author": [practitioner_ref(by)],
            "content": [{"attachment": attachment}],
        });
        let updated = end + Duration::hours(4);
        self.put("DocumentReference", &doc, updated, body);
        let body = json!({"contentType": content_type, "data": BASE64.encode(text),
            "securityContext": {"reference": format!("DocumentReference/{doc}")}});
        self.put("Binary", &bin, updated, body);
    }

    /// A recent adolescent visit a parent must not see: for Sofia reproductive health (problem, chlamydia
    /// screen, contraceptive), for Ava anxiety; each with its note.
    fn confidential_visit(&mut self) {
        let sofia = match self.member.id {
            "sofia-garcia" => true,
            "ava-thompson" => false,
            _ => return,
        };
        self.confidential = true;
        let day = self.today - self.days(30..90);
        let reason = if sofia { DYSMENORRHEA } else { ANXIETY };
        let start = self.encounter(VisitKind::Sick(reason), day, &KIM);
        let onset = day - self.days(60..200);
        self.condition(&reason, onset, None);
        let mut plan = "Confidential adolescent visit at the patient's request.".to_owned();
        if sofia {
            let negative = json!({"valueCodeableConcept": concept(SNOMED, ("260385009", "Negative")),
                "interpretation": [concept(INTERPRETATION, ("N", "Normal"))]});
            let id = self.observation(LABORATORY, CHLAMYDIA, start, negative);
            let results = vec![json!({"reference": format!("Observation/{id}")})];
            self.report(CHLAMYDIA, start, results);
            self.prescribe(&CONTRACEPTIVE, day, "active", &KIM);
            plan.push_str(" Oral contraceptive started for dysmenorrhea; chlamydia screen sent.");
        } else {
            plan.push_str(" Discussed coping strategies; referral to counseling offered.");
        }
        let what = reason.snomed.1.to_lowercase();
        let seen = format!("Seen by Dr. Grace Kim for {what}.");
        self.note(("34108-1", "Outpatient Note"), &KIM, &[seen, plan], &[]);
        self.visit = None;
        self.confidential = false;
    }

    /// Shapes real exports have: a culture result coded without a display, a free-text comment result, and a
    /// smoking history known only to the month.
    fn untidy_items(&mut self) {
        let t = self.slot(add_months(self.today, -38));
        match self.member.id {
            "maria-garcia" => {
                let coding = json!([{"system": SNOMED, "code": "264868006"}]);
                let result =
                    json!({"valueCodeableConcept": {"coding": coding, "text": "No growth"}});
                let id = self.observation(LABORATORY, URINE_CULTURE, t, result);
                let results = vec![json!({"reference": format!("Observation/{id}")})];
                self.report(URINE_CULTURE, t, results);
            }
            "daniel-chen" => {
                let comment = "Patient was not fasting; interpret triglycerides with caution.";
                self.observation(LABORATORY, COMMENT, t, json!({"valueString": comment}));
                let month = add_months(self.today, -84);
                let status = json!({
                    "status": "final",
                    "category": [concept(OBS_CATEGORY, SOCIAL_HISTORY)],
                    "code": concept(LOINC, SMOKING),
                    "effectiveDateTime": format!("{:04}-{:02}", month.year(), u8::from(month.month())),
                    "valueCodeableConcept": concept(SNOMED, ("8517006", "Ex-smoker")),
                });
                self.add("Observation", at(month, 10 * 60), status);
            }
            _ => {}
        }
    }

    /// The last two visits as fulfilled appointments, and one or two booked in the next 90 days.
    fn appointments(&mut self) {
        let by = self.member.story.clinician;
        let recent = self.past_visits.len().saturating_sub(2);
        let mut all = self.past_visits.split_off(recent);
        for i in 0..self.rng.random_range(1..=2) {
            let day = self.today + self.days(1..91);
            let start = self.slot(day);
            let what = match (i, self.member.story.years) {
                (0, _) => "follow-up visit",
                (_, 0) => "influenza vaccination",
                _ => "annual physical",
            };
            all.push((start, start + Duration::minutes(30), what.into()));
        }
        for (start, end, what) in all {
            let booked = start.date() > self.today;
            let updated = match booked {
                true => at(self.today, 14 * 60) - self.days(1..60),
                false => start - Duration::days(21),
            };
            let patient = json!({"reference": format!("Patient/{}", self.member.id)});
            let body = json!({
                "status": if booked { "booked" } else { "fulfilled" },
                "serviceType": [{"text": "Office Visit"}],
                "description": capitalized(&what),
                "start": instant(start), "end": instant(end), "minutesDuration": (end - start).whole_minutes(),
                "participant": [{"actor": patient, "status": "accepted"},
                    {"actor": practitioner_ref(&by), "status": "accepted"}],
            });
            self.add("Appointment", updated, body);
        }
    }

    /// Tops the chart up to exactly `target` resources with frequent lab panels spread over the history,
    /// finishing with single glucose-meter readings.
    fn top_up(&mut self, target: usize) {
        const ROTATION: [Panel; 4] = [CMP, CBC, A1C, LIPIDS];
        let (start, span) = (self.start(), (self.today - self.start()).whole_days() - 2);
        let steps = (target.saturating_sub(self.added) as f64 / 5.25).max(1.0);
        let mut k = 0;
        while self.added < target {
            let offset = ((k as f64 + 0.5) * span as f64 / steps) as i64;
            let drawn =
                at(start, 6 * 60 + 45) + Duration::days(offset.min(span)) + self.minutes(0..90);
            if target - self.added > 9 {
                self.panel(&ROTATION[k % ROTATION.len()], drawn);
            } else {
                let value = measured(&POC_GLUCOSE, POC_GLUCOSE.typical + 12.0 * self.normal());
                let code = (POC_GLUCOSE.loinc, POC_GLUCOSE.display);
                self.observation(LABORATORY, code, drawn, value);
            }
            k += 1;
        }
    }
}

/// A lab value rounded as reported, with its interpretation flag and reference range.
fn measured(lab: &Lab, value: f64) -> Value {
    let value = round(value, lab.decimals);
    let flag = interpretation(value, lab.low, lab.high);
    let quantity = |v| quantity(v, lab.decimals, lab.unit);
    let mut result = json!({"referenceRange": [{}]});
    result["valueQuantity"] = quantity(value);
    result["interpretation"] = Value::Array(vec![concept(INTERPRETATION, flag)]);
    result["referenceRange"][0]["low"] = quantity(lab.low);
    result["referenceRange"][0]["high"] = quantity(lab.high);
    result
}

/// The v3 interpretation flag of a value against its range; HH/LL beyond twice the high or half the low.
fn interpretation(value: f64, low: f64, high: f64) -> Code {
    match value {
        v if v > 2.0 * high => ("HH", "Critical high"),
        v if v > high => ("H", "High"),
        v if v < low / 2.0 => ("LL", "Critical low"),
        v if v < low => ("L", "Low"),
        _ => ("N", "Normal"),
    }
}

/// Height (cm) and weight (kg) of a child of this age, interpolated on the growth table.
fn growth(age: f64) -> (f64, f64) {
    let after = GROWTH
        .iter()
        .position(|g| g.0 >= age)
        .unwrap_or(GROWTH.len() - 1);
    let (a, b) = (GROWTH[after.saturating_sub(1)], GROWTH[after]);
    let f = if b.0 > a.0 {
        ((age - a.0) / (b.0 - a.0)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (a.1 + f * (b.1 - a.1), a.2 + f * (b.2 - a.2))
}

fn practitioner(c: &Clinician, today: Date) -> Value {
    let updated = instant(at(add_months(today, -150), 9 * 60));
    json!({
        "resourceType": "Practitioner", "id": c.id,
        "meta": {"versionId": "1", "lastUpdated": updated},
        "active": true,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": c.npi}],
        "name": [{"use": "official", "text": format!("Dr. {} {}", c.given, c.family), "family": c.family,
            "given": [c.given], "prefix": ["Dr."]}],
    })
}

fn related_person(link: &Proxy, proxy: &Member, seen_birth: Date, today: Date) -> Value {
    let since = match link.kind {
        ProxyKind::Parent => seen_birth,
        ProxyKind::LegalProxy => add_months(today, -26),
    };
    let relationship: Vec<Value> = link
        .relationship
        .iter()
        .map(|r| concept(ROLE_CODE, *r))
        .collect();
    json!({
        "resourceType": "RelatedPerson", "id": link.id,
        "meta": {"versionId": "1", "lastUpdated": instant(at(since, 10 * 60 + 5))},
        "active": true,
        "patient": {"reference": format!("Patient/{}", link.patient)},
        "relationship": relationship,
        "name": [{"use": "official", "text": format!("{} {}", proxy.given, proxy.family), "family": proxy.family,
            "given": [proxy.given]}],
        "gender": proxy.gender,
        "telecom": [{"system": "phone", "value": proxy.phone, "use": "mobile"}],
        "period": {"start": since.to_string()},
    })
}

fn concept(system: &str, (code, display): (&str, &str)) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn diagnosis_concept(d: &Diagnosis) -> Value {
    json!({"coding": [{"system": SNOMED, "code": d.snomed.0, "display": d.snomed.1},
        {"system": ICD10, "code": d.icd10.0, "display": d.icd10.1}], "text": d.snomed.1})
}

fn practitioner_ref(c: &Clinician) -> Value {
    json!({"reference": format!("Practitioner/{}", c.id), "display": format!("Dr. {} {}", c.given, c.family)})
}

fn quantity(value: f64, decimals: i32, unit: &str) -> Value {
    let value = match decimals {
        0 => json!(value.round() as i64),
        _ => json!(round(value, decimals)),
    };
    json!({"value": value, "unit": unit, "system": UCUM, "code": unit})
}

fn period(start: DateTime, end: DateTime) -> Value {
    json!({"start": instant(start), "end": instant(end)})
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn at(day: Date, minutes: i64) -> DateTime {
    DateTime::new(day, Time::MIDNIGHT) + Duration::minutes(minutes)
}

/// An instant as FHIR servers write it, in UTC: "2024-03-01T15:04:05Z". Written out by hand because `time`'s
/// formatter made the 50,000-resource benchmark a fifth slower in debug builds.
fn instant(t: DateTime) -> String {
    let (month, time) = (u8::from(t.month()), t.time());
    let (h, m, s) = (time.hour(), time.minute(), time.second());
    format!(
        "{}-{month:02}-{:02}T{h:02}:{m:02}:{s:02}Z",
        t.year(),
        t.day()
    )
}

/// The same day `months` later (or earlier), moved to the 28th at most so that every month has it.
fn add_months(day: Date, months: i32) -> Date {
    let index = day.year() * 12 + i32::from(u8::from(day.month())) - 1 + months;
    let month = Month::January.nth_next(index.rem_euclid(12) as u8);
    Date::from_calendar_date(index.div_euclid(12), month, day.day().min(28)).unwrap_or(day)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use time::macros::date;

    use super::*;

    const TODAY: Date = date!(2026 - 11 - 22);

    fn key(r: &Value) -> String {
        let (ty, id) = (r["resourceType"].as_str(), r["id"].as_str());
        format!("{}/{}", ty.unwrap_or("?"), id.unwrap_or("?"))
    }

    fn code(r: &Value) -> &str {
        r["code"]["coding"][0]["code"].as_str().unwrap_or("")
    }

    fn age(birth: Date, on: Date) -> i32 {
        let before = (u8::from(on.month()), on.day()) < (u8::from(birth.month()), birth.day());
        on.year() - birth.year() - i32::from(before)
    }

    /// Each resource in a patient compartment, with that patient (a Binary's is its DocumentReference's).
    fn by_patient(p: &Population) -> Vec<(&Value, String)> {
        let direct = |r: &Value| {
            let refs = [&r["subject"], &r["patient"], &r["participant"][0]["actor"]];
            let reference = refs.iter().find_map(|f| f["reference"].as_str());
            let own = (r["resourceType"] == "Patient").then(|| r["id"].as_str());
            let id = own
                .flatten()
                .or(reference.and_then(|s| s.strip_prefix("Patient/")));
            id.map(str::to_owned)
        };
        let docs: BTreeMap<String, String> = p
            .resources
            .iter()
            .filter_map(|r| Some((key(r), direct(r)?)))
            .collect();
        let binary = |r: &Value| {
            docs.get(r["securityContext"]["reference"].as_str()?)
                .cloned()
        };
        let owner = |r| direct(r).or_else(|| binary(r));
        p.resources
            .iter()
            .filter_map(|r| Some((r, owner(r)?)))
            .collect()
    }

    fn counts(p: &Population) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, patient) in by_patient(p) {
            *counts.entry(patient).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn same_arguments_give_identical_json_and_seeds_vary_values_only() {
        let json = |seed| serde_json::to_string(&generate(seed, TODAY, Some(3000)).resources);
        assert_eq!(json(7).expect("json"), json(7).expect("json"));
        let (a, b) = (generate(1, TODAY, None), generate(2, TODAY, None));
        let a1c = |p: &Population| -> Vec<String> {
            let tests = p
                .resources
                .iter()
                .filter(|r| r["resourceType"] == "Observation");
            let a1c = tests.filter(|r| code(r) == "4548-4");
            a1c.map(|r| r["valueQuantity"]["value"].to_string())
                .collect()
        };
        assert_ne!(a1c(&a), a1c(&b));
        assert_eq!(format!("{:?}", a.people), format!("{:?}", b.people));
        let logins = a.people.iter().filter_map(|p| p.login.as_ref());
        let usernames: Vec<_> = logins.map(|l| l.username.as_str()).collect();
        assert_eq!(usernames, ["maria", "daniel", "ava"]);
    }

    #[test]
    fn ids_are_unique_and_references_resolve() {
        let p = generate(3, TODAY, Some(1000));
        let mut ids = BTreeSet::new();
        for r in &p.resources {
            assert_eq!(r["meta"]["versionId"], "1", "{}", key(r));
            let updated = r["meta"]["lastUpdated"].as_str().unwrap_or("");
            assert!(updated.len() == 20 && updated.ends_with('Z'), "{}", key(r));
            assert!(ids.insert(key(r)), "duplicate {}", key(r));
        }
        fn walk<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
            let mut visit = |k: &str, v: &'v Value| match (k, v.as_str()) {
                ("reference" | "url", Some(s)) => out.push(s),
                _ => walk(v, out),
            };
            match v {
                Value::Object(map) => map.iter().for_each(|(k, v)| visit(k, v)),
                Value::Array(items) => items.iter().for_each(|v| visit("", v)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        p.resources.iter().for_each(|r| walk(r, &mut refs));
        assert!(refs.len() > 5000);
        let dangling: Vec<_> = refs.into_iter().filter(|r| !ids.contains(*r)).collect();
        assert!(dangling.is_empty(), "{dangling:?}");
        for link in p.people.iter().flat_map(|x| &x.proxy_for) {
            assert!(ids.contains(&format!("RelatedPerson/{}", link.related_person_id)));
        }
    }

    #[test]
    fn confidential_items_belong_to_teenagers_only() {
        let p = generate(1, TODAY, None);
        let restricted = |r: &Value| r["meta"]["security"][0]["code"] == "R";
        let labelled = |who: &str| -> Vec<&Value> {
            let all = by_patient(&p).into_iter();
            all.filter(|(r, p)| p == who && restricted(r))
                .map(|(r, _)| r)
                .collect()
        };
        let sofia = labelled("sofia-garcia");
        let types = [
            "Condition",
            "Observation",
            "MedicationRequest",
            "DocumentReference",
            "Binary",
        ];
        for ty in types {
            assert!(
                sofia.iter().any(|r| r["resourceType"] == ty),
                "no confidential {ty}"
            );
        }
        assert!(sofia.iter().any(|r| code(r) == "43304-5"));
        assert!(!labelled("ava-thompson").is_empty());
        for who in ["leo-garcia", "maria-garcia", "daniel-chen", "wei-chen"] {
            assert!(labelled(who).is_empty(), "{who} has confidential items");
        }
        let unlabelled = p.resources.iter().filter(|r| !restricted(r));
        assert!(unlabelled.clone().count() > 2000);
        assert!(
            unlabelled
                .into_iter()
                .all(|r| r["meta"].get("security").is_none())
        );
    }

    #[test]
    fn ages_hold_for_a_month_from_any_today() {
        let days = [
            date!(2025 - 02 - 28),
            date!(2024 - 02 - 29),
            date!(2027 - 01 - 01),
        ];
        for today in [TODAY].into_iter().chain(days) {
            let people = generate(1, today, None).people;
            let age_of = |id: &str| {
                people
                    .iter()
                    .find(|x| x.patient_id == id)
                    .map(|x| x.birth_date)
            };
            let ages = [
                "maria-garcia",
                "leo-garcia",
                "sofia-garcia",
                "ava-thompson",
                "wei-chen",
            ]
            .map(|id| age_of(id).map(|birth| age(birth, today)));
            assert_eq!(ages[..4], [Some(41), Some(9), Some(15), Some(16)]);
            assert!(ages[4].is_some_and(|a| a >= 80));
            let later = today + Duration::days(30);
            assert!(
                people
                    .iter()
                    .all(|x| age(x.birth_date, later) == age(x.birth_date, today))
            );
        }
    }

    #[test]
    fn interpretation_flags_match_ranges_and_trends_show() {
        let p = generate(5, TODAY, Some(2000));
        let ranged: Vec<_> = p
            .resources
            .iter()
            .filter(|r| r["referenceRange"].is_array())
            .collect();
        assert!(ranged.len() > 1000);
        for r in ranged {
            let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            let range = &r["referenceRange"][0];
            let (low, high) = (
                number(&range["low"]["value"]),
                number(&range["high"]["value"]),
            );
            let value = number(&r["valueQuantity"]["value"]);
            let ok = match r["interpretation"][0]["coding"][0]["code"].as_str() {
                Some("N") => (low..=high).contains(&value),
                Some("H") => value > high && value <= 2.0 * high,
                Some("HH") => value > 2.0 * high,
                Some("L") => value < low && value >= low / 2.0,
                Some("LL") => value < low / 2.0,
                _ => false,
            };
            assert!(ok, "{} has {value} against {low}-{high}", key(r));
        }
        let daniel = p
            .resources
            .iter()
            .filter(|r| r["subject"]["reference"] == "Patient/daniel-chen");
        let a1c = daniel.filter(|r| code(r) == "4548-4" && r["resourceType"] == "Observation");
        let a1c: Vec<f64> = a1c
            .filter_map(|r| r["valueQuantity"]["value"].as_f64())
            .collect();
        assert!(
            a1c.len() >= 30 && a1c[0] > 7.5 && a1c[a1c.len() - 1] < 7.6,
            "{a1c:?}"
        );
    }

    #[test]
    fn nothing_is_dated_after_today_but_booked_appointments() {
        let p = generate(1, TODAY, None);
        let limit = format!("{TODAY}T23:59:59Z");
        let fields = [
            "effectiveDateTime",
            "issued",
            "authoredOn",
            "occurrenceDateTime",
            "date",
        ];
        for r in &p.resources {
            let mut dates: Vec<&Value> = fields.iter().map(|f| &r[*f]).collect();
            dates.extend([
                &r["meta"]["lastUpdated"],
                &r["period"]["end"],
                &r["recordedDate"],
            ]);
            match r["status"] == "booked" {
                true => assert!(r["start"].as_str() > Some(limit.as_str()), "{}", key(r)),
                false => dates.push(&r["start"]),
            }
            for date in dates.into_iter().filter_map(Value::as_str) {
                assert!(date <= limit.as_str(), "{} dated {date}", key(r));
            }
        }
    }

    #[test]
    fn charts_have_realistic_sizes_and_notes() {
        let started = std::time::Instant::now();
        let p = generate(1, TODAY, None);
        println!(
            "default: {} resources in {:?}",
            p.resources.len(),
            started.elapsed()
        );
        let counts = counts(&p);
        println!("{counts:?}");
        assert!(
            counts
                .values()
                .all(|n| (180..=950).contains(n) && *n <= counts["daniel-chen"])
        );
        for person in &p.people {
            let notes = by_patient(&p).into_iter().filter(|(r, who)| {
                *who == person.patient_id && r["resourceType"] == "DocumentReference"
            });
            assert!(notes.count() >= 3, "{}", person.patient_id);
        }
    }

    #[test]
    fn large_patient_has_the_requested_size() {
        for n in [300, 5_000, 50_000] {
            let started = std::time::Instant::now();
            let p = generate(1, TODAY, Some(n));
            let got = counts(&p)["large-patient"];
            println!(
                "large_patient {n}: {got} resources in {:?}",
                started.elapsed()
            );
            assert!(got.abs_diff(n) * 100 <= n, "{got} resources for {n}");
            let large = p
                .people
                .iter()
                .find_map(|x| x.login.as_ref().filter(|l| l.username == "large"));
            assert_eq!(large.map(|l| l.password.as_str()), Some("large-demo"));
        }
    }
}
