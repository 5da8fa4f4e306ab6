"""The peer of ChartLink's network benchmark: SMART's client-py (PyPI `fhirclient`) fetching what a ChartLink sync
fetches (the Patient, every searched type, Observations per category, every page of each, and the documents'
Binary content), one request after another, as a client-py app does. Prints a JSON summary.

Usage: client_py_sync.py FHIR_BASE USER PASSWORD PAGE_SIZE
"""

import json
import sys
import time

from fhirclient.models.fhirsearch import FHIRSearch
from fhirclient.models import (
    allergyintolerance, appointment, condition, diagnosticreport, documentreference, encounter, immunization,
    medicationrequest, observation, procedure,
)

from client_py_launch import launch

TYPES = [
    allergyintolerance.AllergyIntolerance, medicationrequest.MedicationRequest, immunization.Immunization,
    condition.Condition, diagnosticreport.DiagnosticReport, procedure.Procedure, encounter.Encounter,
    documentreference.DocumentReference, appointment.Appointment,
]
CATEGORIES = ["laboratory", "vital-signs", "social-history", "survey", "exam", "imaging", "procedure", "therapy",
              "activity"]


def main():
    fhir_base, user, password, page = sys.argv[1:5]
    smart = launch(fhir_base, user, password)
    started = time.monotonic()
    pid = smart.patient_id
    count = 0
    searches = [(t, {"patient": pid, "_count": page}) for t in TYPES]
    searches += [(observation.Observation, {"patient": pid, "category": c, "_count": page}) for c in CATEGORIES]
    docs = []
    _ = smart.patient
    for model, struct in searches:
        for r in FHIRSearch(model, struct).perform_resources_iter(smart.server):
            count += 1
            if model is documentreference.DocumentReference:
                docs.extend(c.attachment.url for c in (r.content or []) if c.attachment and c.attachment.url)
    for url in docs:
        smart.server.request_data(url.split("/fhir/", 1)[-1])
    print(json.dumps({"resources": count, "documents": len(docs), "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
