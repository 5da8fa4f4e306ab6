"""A standalone launch by SMART's own Python client (PyPI `fhirclient`, client-py), which nobody here wrote.

client-py discovers the OAuth endpoints through the CapabilityStatement's oauth-uris extension, authenticates
with a client secret and sends no PKCE (the sandbox registers it as a legacy confidential client). The portal's
pages are filled the way a browser submits them. Prints a JSON summary for the Rust test to check.
"""

import html
import json
import re
import sys

import requests
from fhirclient import client
from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation


def hidden(page, name):
    m = re.search(r'name="%s" value="([^"]*)"' % name, page)
    if not m:
        raise SystemExit("no %s on the page" % name)
    return html.unescape(m.group(1))


def launch(fhir_base, user, password, patient=None):
    """Links client-py to `user`'s record (or `patient`'s, picked in the account chooser) through the portal."""
    root = fhir_base.rsplit("/fhir", 1)[0]
    settings = {
        "app_id": "client-py",
        "app_secret": "client-py-secret",
        "api_base": fhir_base,
        "redirect_uri": "http://127.0.0.1/client-py/callback",
        "scope": "launch/patient openid fhirUser patient/*.read",
    }
    smart = client.FHIRClient(settings=settings)
    browser = requests.Session()
    page = browser.get(smart.authorize_url)
    page.raise_for_status()
    tx = hidden(page.text, "tx")
    page = browser.post(root + "/portal/login", data={"tx": tx, "username": user, "password": password})
    if "Which account" in page.text and patient:
        page = browser.post(root + "/portal/choose", data={"tx": tx, "patient": patient})
    boxes = [html.unescape(v) for v in re.findall(r'name="scope" id="scope-\d+" value="([^"]*)"', page.text)]
    form = [("tx", tx), ("decision", "allow"), ("acknowledged", "yes")] + [("scope", b) for b in boxes]
    answer = browser.post(root + "/portal/consent", data=form, allow_redirects=False)
    callback = answer.headers["Location"]
    smart.handle_callback(callback)
    return smart


def main():
    fhir_base, user, password, patient = sys.argv[1:5]
    smart = launch(fhir_base, user, password, patient)
    name = smart.human_name(smart.patient.name[0])
    conditions = Condition.where(struct={"patient": smart.patient_id}).perform_resources(smart.server)
    labs = Observation.where(struct={"patient": smart.patient_id, "category": "laboratory", "_count": "50"}).perform_resources(smart.server)
    print(json.dumps({
        "patient_id": smart.patient_id,
        "name": name,
        "conditions": len(conditions),
        "first_lab_units": [o.valueQuantity.unit for o in labs if o.valueQuantity is not None][:3],
        "ready": smart.ready,
    }))


if __name__ == "__main__":
    main()
