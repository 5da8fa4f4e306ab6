//! Care teams (CareTeam): who looks after the patient, in which role.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// One member of a care team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeamMember {
    /// The member by the name the server gave (references are not resolved here).
    pub name: String,
    /// "Primary care physician", "Caregiver", ...
    pub role: Option<String>,
}

/// A care team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareTeam {
    pub id: String,
    pub source: Option<String>,
    /// Its name, else its category's name, else "Care team".
    pub name: String,
    pub status: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    /// The members with a name (members given only as a bare reference are left out).
    pub members: Vec<CareTeamMember>,
    /// The organizations that manage it, by name.
    pub managing_organizations: Vec<String>,
}

/// A care team from a CareTeam.
pub fn care_team(r: &Value) -> Option<CareTeam> {
    let id = resource_id(r, "CareTeam")?;
    let (start, end) = period(&r["period"]);
    Some(CareTeam {
        id,
        source: None,
        name: string(&r["name"])
            .or_else(|| concept_names(&r["category"]).into_iter().next())
            .unwrap_or_else(|| "Care team".into()),
        status: status(r),
        start,
        end,
        members: list(&r["participant"])
            .iter()
            .filter_map(|p| {
                Some(CareTeamMember {
                    name: display(&p["member"])?,
                    role: concept_names(&p["role"]).into_iter().next(),
                })
            })
            .collect(),
        managing_organizations: list(&r["managingOrganization"])
            .iter()
            .filter_map(display)
            .collect(),
    })
}

super::view!(CareTeam, ["CareTeam"], care_team, start);

impl Line for CareTeam {
    fn line(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| match &m.role {
                Some(role) => format!("{} ({role})", m.name),
                None => m.name.clone(),
            })
            .collect();
        format!("{} [{}] {}", self.name, self.status, members.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn members_by_name_and_role() {
        let r = json!({"resourceType": "CareTeam", "id": "ct", "status": "active",
            "participant": [{"role": [{"text": "Primary care physician"}], "member": {"display": "Dr. Anna Lee"}},
                {"member": {"reference": "Practitioner/x"}}, {"member": {"display": "Lakeview Clinic"}}],
            "managingOrganization": {"display": "Lakeview Clinic"}});
        let t = care_team(&r).unwrap();
        assert_eq!(t.name, "Care team");
        assert_eq!(t.members.len(), 2);
        assert_eq!(t.members[0].role.as_deref(), Some("Primary care physician"));
        assert_eq!(t.managing_organizations, ["Lakeview Clinic"]);
    }
}
