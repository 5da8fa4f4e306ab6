//! The codes and reference values charts are made of, and the fixed people, as aligned tables (kept out of
//! the generator's logic; `#[rustfmt::skip]` on its `mod` line keeps their alignment).
use super::{Code, ProxyKind, RXNORM, SNOMED};

/// A lab test with its UCUM unit, adult reference range, typical healthy value and reported decimals.
#[derive(Clone, Copy)]
pub struct Lab { pub loinc: &'static str, pub display: &'static str, pub unit: &'static str,
                 pub low: f64, pub high: f64, pub typical: f64, pub decimals: i32 }
const fn lab(code: Code, unit: &'static str, (low, high): (f64, f64), typical: f64, decimals: i32) -> Lab {
    Lab { loinc: code.0, display: code.1, unit, low, high, typical, decimals }
}
const WBC: Lab = lab(("6690-2", "Leukocytes [#/volume] in Blood by Automated count"), "10*3/uL",
    (4.5, 11.0), 7.0, 1);
const HGB: Lab = lab(("718-7", "Hemoglobin [Mass/volume] in Blood"), "g/dL", (12.0, 17.5), 14.2, 1);
const HCT: Lab = lab(("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"), "%",
    (36.0, 50.0), 42.0, 1);
const PLT: Lab = lab(("777-3", "Platelets [#/volume] in Blood by Automated count"), "10*3/uL",
    (150.0, 400.0), 260.0, 0);
const GLUCOSE: Lab = lab(("2345-7", "Glucose [Mass/volume] in Serum or Plasma"), "mg/dL", (70.0, 99.0), 88.0, 0);
const BUN: Lab = lab(("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma"), "mg/dL", (7.0, 20.0), 14.0, 0);
const CREATININE: Lab = lab(("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"), "mg/dL", (0.6, 1.3), 0.9, 2);
const EGFR: Lab = lab(("33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or \
    Plasma by Creatinine-based formula (MDRD)"), "mL/min/{1.73_m2}", (60.0, 120.0), 95.0, 0);
const SODIUM: Lab = lab(("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), "mmol/L", (135.0, 145.0), 140.0, 0);
const POTASSIUM: Lab = lab(("2823-3", "Potassium [Moles/volume] in Serum or Plasma"), "mmol/L", (3.5, 5.1), 4.2, 1);
const CALCIUM: Lab = lab(("17861-6", "Calcium [Mass/volume] in Serum or Plasma"), "mg/dL", (8.5, 10.2), 9.4, 1);
const ALT: Lab = lab(("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma"), "U/L",
    (7.0, 56.0), 24.0, 0);
const CHOLESTEROL: Lab = lab(("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"), "mg/dL",
    (100.0, 199.0), 175.0, 0);
const TRIGLYCERIDES: Lab = lab(("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"), "mg/dL",
    (0.0, 149.0), 110.0, 0);
const HDL: Lab = lab(("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"), "mg/dL",
    (40.0, 100.0), 55.0, 0);
const LDL: Lab = lab(("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"), "mg/dL",
    (0.0, 99.0), 95.0, 0);
const HBA1C: Lab = lab(("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), "%", (4.0, 5.6), 5.2, 1);
const TSH: Lab = lab(("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"), "m[IU]/L", (0.4, 4.0), 1.8, 2);
const LEAD: Lab = lab(("5671-3", "Lead [Mass/volume] in Blood"), "ug/dL", (0.0, 3.5), 1.0, 1);
pub const POC_GLUCOSE: Lab = lab(("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"), "mg/dL",
    (70.0, 99.0), 92.0, 0);

/// A panel: one DiagnosticReport (its LOINC code) over one Observation per lab.
#[derive(Clone, Copy)]
pub struct Panel { pub code: Code, pub short: &'static str, pub labs: &'static [Lab] }
pub const CBC: Panel = Panel { code: ("58410-2", "CBC panel - Blood by Automated count"), short: "CBC",
    labs: &[WBC, HGB, HCT, PLT] };
pub const CMP: Panel = Panel { code: ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
    short: "metabolic panel", labs: &[GLUCOSE, BUN, CREATININE, EGFR, SODIUM, POTASSIUM, CALCIUM, ALT] };
pub const BMP: Panel = Panel { code: ("51990-0", "Basic metabolic panel - Blood"), short: "kidney panel",
    labs: &[GLUCOSE, BUN, CREATININE, EGFR, SODIUM, POTASSIUM] };
pub const LIPIDS: Panel = Panel { code: ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"),
    short: "lipid panel", labs: &[CHOLESTEROL, TRIGLYCERIDES, HDL, LDL] };
pub const A1C: Panel = Panel { code: (HBA1C.loinc, HBA1C.display), short: "hemoglobin A1c", labs: &[HBA1C] };
pub const THYROID: Panel = Panel { code: (TSH.loinc, TSH.display), short: "TSH", labs: &[TSH] };
pub const LEAD_SCREEN: Panel = Panel { code: (LEAD.loinc, LEAD.display), short: "lead level", labs: &[LEAD] };

/// A lab whose values drift from `start` (beginning of the history) to `end` (today), with this much noise.
pub struct Trend { pub loinc: &'static str, pub start: f64, pub end: f64, pub noise: f64 }
const fn trend(lab: Lab, start: f64, end: f64, noise: f64) -> Trend {
    Trend { loinc: lab.loinc, start, end, noise }
}

/// A problem as an EHR codes it: SNOMED CT plus the ICD-10-CM billing code.
#[derive(Clone, Copy, PartialEq)]
pub struct Diagnosis { pub snomed: Code, pub icd10: Code }
const fn dx(snomed: Code, icd10: Code) -> Diagnosis { Diagnosis { snomed, icd10 } }
const DIABETES: Diagnosis = dx(("44054006", "Diabetes mellitus type 2"),
    ("E11.9", "Type 2 diabetes mellitus without complications"));
const HYPERTENSION: Diagnosis = dx(("38341003", "Hypertensive disorder, systemic arterial"),
    ("I10", "Essential (primary) hypertension"));
const HYPERLIPIDEMIA: Diagnosis = dx(("55822004", "Hyperlipidemia"), ("E78.5", "Hyperlipidemia, unspecified"));
const HYPOTHYROIDISM: Diagnosis = dx(("40930008", "Hypothyroidism"), ("E03.9", "Hypothyroidism, unspecified"));
const ASTHMA: Diagnosis = dx(("195967001", "Asthma"), ("J45.909", "Unspecified asthma, uncomplicated"));
const CKD3: Diagnosis = dx(("433144002", "Chronic kidney disease stage 3"),
    ("N18.30", "Chronic kidney disease, stage 3 unspecified"));
const ANKLE_SPRAIN: Diagnosis = dx(("44465007", "Sprain of ankle"),
    ("S93.409A", "Sprain of unspecified ligament of unspecified ankle, initial encounter"));
const ACNE: Diagnosis = dx(("88616000", "Acne vulgaris"), ("L70.0", "Acne vulgaris"));
const RHINITIS: Diagnosis = dx(("61582004", "Allergic rhinitis"), ("J30.9", "Allergic rhinitis, unspecified"));
pub const DYSMENORRHEA: Diagnosis = dx(("266599000", "Dysmenorrhea"), ("N94.6", "Dysmenorrhea, unspecified"));
pub const ANXIETY: Diagnosis = dx(("197480006", "Anxiety disorder"), ("F41.9", "Anxiety disorder, unspecified"));
pub const OTITIS: Diagnosis = dx(("65363002", "Otitis media"),
    ("H66.90", "Otitis media, unspecified, unspecified ear"));
pub const SICK_REASONS: [Diagnosis; 3] = [
    OTITIS,
    dx(("195662009", "Acute viral pharyngitis"), ("J02.9", "Acute pharyngitis, unspecified")),
    dx(("10509002", "Acute bronchitis"), ("J20.9", "Acute bronchitis, unspecified")),
];

/// An outpatient prescription: RxNorm product, sig, timing (times per period), and dispense (quantity, form,
/// days of supply, refills).
pub struct Med { pub code: Code, pub sig: &'static str, pub timing: (u32, u32, &'static str), pub as_needed: bool,
                 pub dispense: (u32, &'static str, u32, u32) }
const fn daily(code: Code, sig: &'static str) -> Med {
    Med { code, sig, timing: (1, 1, "d"), as_needed: false, dispense: (90, "tablet", 90, 3) }
}
const METFORMIN: Med = daily(("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    "Take 1 tablet by mouth daily with the evening meal.");
const ATORVASTATIN: Med = daily(("617310", "atorvastatin 20 MG Oral Tablet"), "Take 1 tablet by mouth at bedtime.");
const LISINOPRIL: Med = daily(("314076", "lisinopril 10 MG Oral Tablet"), "Take 1 tablet by mouth daily.");
const LEVOTHYROXINE: Med = daily(("966247", "levothyroxine sodium 0.05 MG Oral Tablet"),
    "Take 1 tablet by mouth every morning on an empty stomach.");
const AMLODIPINE: Med = daily(("197361", "amlodipine 5 MG Oral Tablet"), "Take 1 tablet by mouth daily.");
const ALBUTEROL: Med = Med { code: ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    sig: "Inhale 2 puffs every 4 hours as needed for wheezing or shortness of breath.", timing: (1, 4, "h"),
    as_needed: true, dispense: (1, "inhaler", 30, 2) };
pub const AMOXICILLIN: Med = Med { code: ("308182", "amoxicillin 250 MG Oral Capsule"),
    sig: "Take 1 capsule by mouth 3 times daily for 10 days.", timing: (3, 1, "d"), as_needed: false,
    dispense: (30, "capsule", 10, 0) };
pub const CONTRACEPTIVE: Med = Med { dispense: (84, "tablet", 84, 3),
    ..daily(("748879", "Levora 0.15/30 28 Day Pack"), "Take 1 tablet by mouth daily.") };

/// Observation categories, and observation codes (LOINC) besides the labs.
pub const LABORATORY: Code = ("laboratory", "Laboratory");
pub const VITAL_SIGNS: Code = ("vital-signs", "Vital Signs");
pub const SOCIAL_HISTORY: Code = ("social-history", "Social History");
pub const WEIGHT: Code = ("29463-7", "Body weight");
pub const HEIGHT: Code = ("8302-2", "Body height");
pub const BMI: Code = ("39156-5", "Body mass index (BMI) [Ratio]");
pub const HEART_RATE: Code = ("8867-4", "Heart rate");
pub const BLOOD_PRESSURE: Code = ("85354-9", "Blood pressure panel with all children optional");
pub const SYSTOLIC: Code = ("8480-6", "Systolic blood pressure");
pub const DIASTOLIC: Code = ("8462-4", "Diastolic blood pressure");
pub const SMOKING: Code = ("72166-2", "Tobacco smoking status");
pub const CHLAMYDIA: Code = ("43304-5",
    "Chlamydia trachomatis rRNA [Presence] in Specimen by NAA with probe detection");
pub const URINE_CULTURE: Code = ("630-4", "Bacteria identified in Urine by Culture");
pub const COMMENT: Code = ("48767-8", "Annotation comment [Interpretation] Narrative");

/// Encounter types (SNOMED) and the ICD-10-CM reasons of preventive visits.
pub const WELL_CHILD_VISIT: Code = ("410620009", "Well child visit");
pub const CHECK_UP: Code = ("185349003", "Encounter for check up");
pub const FOLLOW_UP: Code = ("390906007", "Follow-up encounter");
pub const CONSULTATION: Code = ("11429006", "Consultation");
pub const SYMPTOM_VISIT: Code = ("185345009", "Encounter for symptom");
pub const CHILD_EXAM: Code = ("Z00.129",
    "Encounter for routine child health examination without abnormal findings");
pub const ADULT_EXAM: Code = ("Z00.00",
    "Encounter for general adult medical examination without abnormal findings");

/// Vaccines by CVX code.
pub const FLU_CHILD: Code = ("150", "Influenza, injectable, quadrivalent, preservative free");
pub const FLU_ADULT: Code = ("141", "Influenza, seasonal, injectable");
pub const COVID: Code = ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose");
const TDAP: Code = ("115", "Tdap");
const PCV13: Code = ("133", "Pneumococcal conjugate PCV 13");
/// The childhood schedule: vaccine and the ages in months of its doses (each age is a well-child visit).
pub const CHILDHOOD: [(Code, &[i32]); 8] = [
    (("08", "Hep B, adolescent or pediatric"), &[0, 1, 6]),
    (("20", "DTaP"), &[2, 4, 6, 15, 48]),
    (("10", "IPV"), &[2, 4, 6, 48]),
    (PCV13, &[2, 4, 6, 12]),
    (("03", "MMR"), &[12, 48]),
    (("21", "varicella"), &[12, 48]),
    (TDAP, &[132]),
    (("62", "HPV, quadrivalent"), &[132, 144]),
];
/// Ages in months of the well-child visits before the yearly ones.
pub const WELL_CHILD_MONTHS: [i32; 12] = [0, 1, 2, 4, 6, 9, 12, 15, 18, 24, 30, 36];
/// 50th-percentile (age in years, height in cm, weight in kg).
pub const GROWTH: [(f64, f64, f64); 12] = [
    (0.0, 50.0, 3.4), (0.5, 67.0, 7.6), (1.0, 75.0, 9.6), (2.0, 87.0, 12.3), (4.0, 102.0, 16.3),
    (6.0, 116.0, 20.7), (8.0, 128.0, 25.6), (10.0, 138.5, 32.0), (12.0, 150.0, 41.0), (14.0, 161.0, 50.0),
    (16.0, 165.0, 55.5), (18.0, 167.0, 59.0),
];

/// An allergy or intolerance (code system, code) with its usual reaction.
pub struct Allergy { pub code: (&'static str, Code), pub category: &'static str, pub criticality: &'static str,
                     pub reaction: Code, pub severity: &'static str }
const PEANUT: Allergy = Allergy { code: (SNOMED, ("91935009", "Allergy to peanut")), category: "food",
    criticality: "high", reaction: ("39579001", "Anaphylaxis"), severity: "severe" };
const PENICILLIN: Allergy = Allergy { code: (RXNORM, ("70618", "Penicillin")), category: "medication",
    criticality: "low", reaction: ("126485001", "Urticaria"), severity: "moderate" };
const SULFA: Allergy = Allergy { code: (RXNORM, ("10180", "Sulfamethoxazole")), category: "medication",
    criticality: "low", reaction: ("271807003", "Eruption of skin"), severity: "mild" };

/// A procedure by SNOMED code; with a duration in minutes it is reported as a period.
pub struct Procedure { pub code: Code, pub minutes: Option<i64> }
const COLONOSCOPY: Procedure = Procedure { code: ("73761001", "Colonoscopy"), minutes: Some(40) };
const MAMMOGRAPHY: Procedure = Procedure { code: ("71651007", "Mammography"), minutes: None };
const ECHOCARDIOGRAPHY: Procedure = Procedure { code: ("40701008", "Echocardiography"), minutes: Some(50) };

/// A clinician (a Practitioner outside every patient compartment) and the clinic they work at.
#[derive(Clone, Copy)]
pub struct Clinician { pub id: &'static str, pub given: &'static str, pub family: &'static str,
                       pub npi: &'static str, pub clinic: &'static str }
const fn dr(id: &'static str, given: &'static str, family: &'static str, npi: &'static str,
            clinic: &'static str) -> Clinician {
    Clinician { id, given, family, npi, clinic }
}
const PATEL: Clinician = dr("pract-patel", "Anita", "Patel", "1902837465", "Lakeview Family Medicine");
const OKAFOR: Clinician = dr("pract-okafor", "James", "Okafor", "1457382910", "Lakeview Pediatrics");
const NGUYEN: Clinician = dr("pract-nguyen", "Linh", "Nguyen", "1639204857", "Lakeview Internal Medicine");
const BROOKS: Clinician = dr("pract-brooks", "Sarah", "Brooks", "1285730496", "Lakeview Geriatrics");
const RUSSO: Clinician = dr("pract-russo", "Marco", "Russo", "1770394628", "Lakeview Digestive Health");
pub const KIM: Clinician = dr("pract-kim", "Grace", "Kim", "1548203967", "Lakeview Adolescent Health");
pub const CLINICIANS: [Clinician; 6] = [PATEL, OKAFOR, NGUYEN, BROOKS, RUSSO, KIM];

/// Adults drift between two weights and blood pressures; children follow the growth curve scaled by a size.
pub enum Body { Adult(Adult), Child(f64) }
/// Height (cm); weight (kg) and blood pressure (mm[Hg]) at the start of the history and today.
pub struct Adult { pub height: f64, pub weight: (f64, f64), pub bp: ((f64, f64), (f64, f64)) }

/// What a chart holds. Months are counted back from `today`.
pub struct Story {
    pub clinician: Clinician,
    /// Years of history for adults; 0 means since birth, with the well-child schedule.
    pub years: i32,
    pub visits_per_year: i32,
    pub body: Body,
    /// Panels and the months between draws.
    pub panels: &'static [(Panel, i64)],
    pub trends: &'static [Trend],
    /// Problem, onset and (if resolved) resolution, in months ago.
    pub conditions: &'static [(Diagnosis, i32, Option<i32>)],
    /// Medication, start and (if stopped) stop, in months ago; orders are renewed yearly.
    pub meds: &'static [(Med, i32, Option<i32>)],
    pub allergies: &'static [(Allergy, i32)],
    pub procedures: &'static [(Procedure, Clinician, i32)],
    pub vaccines: &'static [(Code, i32)],
    /// Tobacco smoking status (SNOMED), recorded at yearly check-ups.
    pub smoking: Option<Code>,
}

/// A person of the population. `age` is in whole years on `today`; the birthday was `days_past_birthday` ago.
pub struct Member {
    pub id: &'static str, pub given: &'static str, pub family: &'static str, pub gender: &'static str,
    pub age: i32, pub days_past_birthday: i64,
    pub mrn: &'static str, pub line: &'static str, pub city: &'static str, pub phone: &'static str,
    pub login: Option<(&'static str, &'static str)>,
    pub story: Story,
}

const NEVER: Option<Code> = Some(("266919005", "Never smoked tobacco"));
const FORMER: Option<Code> = Some(("8517006", "Ex-smoker"));
type Problems = &'static [(Diagnosis, i32, Option<i32>)];
type Meds = &'static [(Med, i32, Option<i32>)];
const fn child(size: f64, conditions: Problems, meds: Meds, allergies: &'static [(Allergy, i32)]) -> Story {
    Story { clinician: OKAFOR, years: 0, visits_per_year: 0, body: Body::Child(size), panels: &[], trends: &[],
            conditions, meds, allergies, procedures: &[], vaccines: &[], smoking: None }
}
const DIABETIC: Story = Story {
    clinician: NGUYEN, years: 10, visits_per_year: 4,
    body: Body::Adult(Adult { height: 176.0, weight: (98.0, 89.0), bp: ((138.0, 86.0), (130.0, 81.0)) }),
    panels: &[(A1C, 3), (CMP, 6), (LIPIDS, 12), (CBC, 12)],
    trends: &[trend(HBA1C, 8.4, 6.8, 0.25), trend(GLUCOSE, 172.0, 124.0, 14.0),
              trend(CHOLESTEROL, 232.0, 168.0, 10.0), trend(TRIGLYCERIDES, 245.0, 150.0, 20.0),
              trend(HDL, 37.0, 44.0, 3.0), trend(LDL, 148.0, 88.0, 8.0)],
    conditions: &[(DIABETES, 118, None), (HYPERTENSION, 100, None), (HYPERLIPIDEMIA, 110, None)],
    meds: &[(METFORMIN, 117, None), (ATORVASTATIN, 109, None), (LISINOPRIL, 99, None)],
    allergies: &[], procedures: &[(COLONOSCOPY, RUSSO, 30)], vaccines: &[(TDAP, 44)], smoking: FORMER,
};
const GARCIAS: (&str, &str, &str) = ("1418 Willow Creek Rd", "Madison", "608-555-0142");

pub const FAMILY: [Member; 6] = [
    Member { id: "maria-garcia", given: "Maria", family: "Garcia", gender: "female", age: 41,
        days_past_birthday: 96, mrn: "203711", line: GARCIAS.0, city: GARCIAS.1, phone: GARCIAS.2,
        login: Some(("maria", "maria-demo")),
        story: Story { clinician: PATEL, years: 10, visits_per_year: 2,
            body: Body::Adult(Adult { height: 163.0, weight: (66.0, 70.5), bp: ((114.0, 74.0), (118.0, 76.0)) }),
            panels: &[(THYROID, 6), (CBC, 12), (CMP, 12), (LIPIDS, 24)], trends: &[trend(TSH, 6.2, 1.9, 0.45)],
            conditions: &[(HYPOTHYROIDISM, 104, None), (ANKLE_SPRAIN, 52, Some(49))],
            meds: &[(LEVOTHYROXINE, 103, None)], allergies: &[(PENICILLIN, 119)],
            procedures: &[(MAMMOGRAPHY, PATEL, 14)], vaccines: &[(TDAP, 80)], smoking: NEVER } },
    Member { id: "leo-garcia", given: "Leo", family: "Garcia", gender: "male", age: 9,
        days_past_birthday: 131, mrn: "203712", line: GARCIAS.0, city: GARCIAS.1, phone: GARCIAS.2, login: None,
        story: child(1.0, &[(ASTHMA, 58, None)], &[(ALBUTEROL, 57, None)], &[(PEANUT, 88)]) },
    Member { id: "sofia-garcia", given: "Sofia", family: "Garcia", gender: "female", age: 15,
        days_past_birthday: 74, mrn: "203713", line: GARCIAS.0, city: GARCIAS.1, phone: GARCIAS.2, login: None,
        story: child(0.98, &[(ACNE, 20, None)], &[], &[]) },
    Member { id: "daniel-chen", given: "Daniel", family: "Chen", gender: "male", age: 52,
        days_past_birthday: 152, mrn: "318204", line: "77 Orchard Lane", city: "Verona", phone: "608-555-0177",
        login: Some(("daniel", "daniel-demo")), story: DIABETIC },
    Member { id: "wei-chen", given: "Wei", family: "Chen", gender: "male", age: 83,
        days_past_birthday: 118, mrn: "318205", line: "2210 Elm Street, Apt 4", city: "Middleton",
        phone: "608-555-0190", login: None,
        story: Story { clinician: BROOKS, years: 8, visits_per_year: 4,
            body: Body::Adult(Adult { height: 168.0, weight: (71.0, 66.0), bp: ((146.0, 82.0), (134.0, 76.0)) }),
            panels: &[(BMP, 3), (CBC, 12)],
            trends: &[trend(CREATININE, 1.32, 1.84, 0.06), trend(EGFR, 55.0, 36.0, 2.5),
                      trend(HGB, 13.0, 11.3, 0.3)],
            conditions: &[(HYPERTENSION, 160, None), (CKD3, 80, None)],
            meds: &[(LISINOPRIL, 95, Some(26)), (AMLODIPINE, 26, None)], allergies: &[(SULFA, 95)],
            procedures: &[(ECHOCARDIOGRAPHY, BROOKS, 20)], vaccines: &[(PCV13, 70), (TDAP, 60)],
            smoking: FORMER } },
    Member { id: "ava-thompson", given: "Ava", family: "Thompson", gender: "female", age: 16,
        days_past_birthday: 203, mrn: "427390", line: "509 Prairie View Dr", city: "Sun Prairie",
        phone: "608-555-0123", login: Some(("ava", "ava-demo")),
        story: child(1.02, &[(RHINITIS, 40, None)], &[], &[]) },
];
/// The benchmark patient: Daniel's story, with as many years of frequent labs as the requested size needs.
pub const LARGE: Member = Member { id: "large-patient", given: "Harold", family: "Benson", gender: "male",
    age: 67, days_past_birthday: 45, mrn: "590001", line: "12 Benchmark Way", city: "Fitchburg",
    phone: "608-555-0101", login: Some(("large", "large-demo")), story: DIABETIC };

/// Who may see whose record, and the RelatedPerson (with v3 RoleCode relationships) standing for them there.
pub struct Proxy { pub proxy: &'static str, pub patient: &'static str, pub kind: ProxyKind,
                   pub id: &'static str, pub relationship: &'static [Code] }
pub const PROXIES: [Proxy; 3] = [
    Proxy { proxy: "maria-garcia", patient: "leo-garcia", kind: ProxyKind::Parent, id: "rp-maria-for-leo",
        relationship: &[("MTH", "mother")] },
    Proxy { proxy: "maria-garcia", patient: "sofia-garcia", kind: ProxyKind::Parent, id: "rp-maria-for-sofia",
        relationship: &[("MTH", "mother")] },
    Proxy { proxy: "daniel-chen", patient: "wei-chen", kind: ProxyKind::LegalProxy, id: "rp-daniel-for-wei",
        relationship: &[("POWATT", "power of attorney"), ("CHILD", "child")] },
];
