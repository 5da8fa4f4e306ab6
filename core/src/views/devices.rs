//! Devices the patient has (Device): implants (pacemakers, stents, joint replacements) and other devices.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A device of the patient's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub source: Option<String>,
    /// Its name (deviceName), else its type's name, else "Device".
    pub name: String,
    /// The type ("Implantable cardiac pacemaker").
    pub kind: Option<String>,
    /// "active", "inactive", "entered-in-error".
    pub status: String,
    /// The unique device identifier: the human-readable carrier, else the device identifier.
    pub udi: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    pub lot_number: Option<String>,
    pub manufactured: Option<FhirDate>,
    pub expires: Option<FhirDate>,
}

/// A device from a Device.
pub fn device(r: &Value) -> Option<Device> {
    let id = resource_id(r, "Device")?;
    let kind = concept_name(&r["type"]);
    let udi = list(&r["udiCarrier"])
        .iter()
        .find_map(|u| string(&u["carrierHRF"]).or_else(|| string(&u["deviceIdentifier"])));
    Some(Device {
        id,
        source: None,
        name: list(&r["deviceName"])
            .iter()
            .find_map(|n| string(&n["name"]))
            .or_else(|| kind.clone())
            .unwrap_or_else(|| "Device".into()),
        kind,
        status: status(r),
        udi,
        manufacturer: string(&r["manufacturer"]),
        model: string(&r["modelNumber"]),
        serial_number: string(&r["serialNumber"]),
        lot_number: string(&r["lotNumber"]),
        manufactured: date(&r["manufactureDate"]),
        expires: date(&r["expirationDate"]),
    })
}

super::view!(Device, ["Device"], device, manufactured);

impl Line for Device {
    fn line(&self) -> String {
        format!("{} [{}] UDI {}", self.name, self.status, opt(&self.udi))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn an_implant() {
        let r = json!({"resourceType": "Device", "id": "dev", "status": "active",
            "udiCarrier": [{"deviceIdentifier": "09999999999999", "carrierHRF": "(01)09999999999999(11)190101"}],
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "72506001", "display": "Implantable defibrillator"}]},
            "manufactureDate": "2019-01-01", "lotNumber": "L1", "patient": {"reference": "Patient/p"}});
        let dev = device(&r).unwrap();
        assert_eq!(
            (dev.name.as_str(), dev.kind.as_deref()),
            (
                "Implantable defibrillator",
                Some("Implantable defibrillator")
            )
        );
        assert_eq!(dev.udi.as_deref(), Some("(01)09999999999999(11)190101"));
        assert_eq!(
            (dev.manufactured, dev.lot_number.as_deref()),
            (Some(d("2019-01-01")), Some("L1"))
        );
    }
}
