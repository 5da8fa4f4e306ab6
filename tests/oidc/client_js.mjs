// SMART's own JavaScript client (npm `fhirclient`, client-js), which nobody here wrote, in its Node form: a
// standalone launch against the sandbox, for tests/tests/client_js.rs.
//
//     node client_js.mjs <fhir-base> <client-id>
//
// Serves /launch and /callback on a free loopback port and prints {"launch": URL} when ready; a browser opens that
// URL and walks the portal. After the callback, client-js reads the patient, searches Conditions and laboratory
// Observations (all pages), refreshes its token, and prints one JSON summary line (counts and names only: no token,
// no clinical content), then exits. Exits 1 with {"error": message} when anything fails.

import { createServer } from 'node:http';

import smart from 'fhirclient';

const [fhirBase, clientId] = process.argv.slice(2);
if (!fhirBase || !clientId) {
  process.stderr.write('usage: node client_js.mjs <fhir-base> <client-id>\n');
  process.exit(2);
}
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
// One user: one session.
const session = {};
let origin;

async function callback(req, res) {
  const client = await smart(req, res).ready();
  const patientId = client.getPatientId();
  const patient = await client.patient.read();
  const all = { pageLimit: 0, flat: true };
  const conditions = await client.request(`Condition?patient=${patientId}`, all);
  const labs = await client.request(`Observation?patient=${patientId}&category=laboratory&_count=50`, all);
  const first = client.state.tokenResponse;
  const hadRefreshToken = typeof first.refresh_token === 'string';
  const before = client.state.tokenResponse.access_token;
  await client.refresh();
  const refreshed = client.state.tokenResponse.access_token !== before;
  const again = await client.request(`Patient/${patientId}`);
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<html><body><h1 id="done">client-js is done.</h1></body></html>');
  const name = patient.name?.[0];
  say({
    patient_id: patientId,
    name: [...(name?.given ?? []), name?.family].filter(Boolean).join(' '),
    scope: first.scope,
    conditions: conditions.length,
    labs: labs.length,
    had_refresh_token: hadRefreshToken,
    refreshed,
    read_after_refresh: again.id === patientId,
  });
}

const server = createServer(async (req, res) => {
  req.session = session;
  const path = new URL(req.url, origin).pathname;
  try {
    if (path === '/launch') {
      await smart(req, res).authorize({
        iss: fhirBase,
        clientId,
        scope: 'launch/patient openid fhirUser offline_access patient/*.rs',
        redirectUri: `${origin}/callback`,
        pkceMode: 'required',
      });
    } else if (path === '/callback') {
      await callback(req, res);
      server.close();
      process.exit(0);
    } else {
      res.writeHead(404);
      res.end();
    }
  } catch (e) {
    say({ error: String(e?.message ?? e) });
    res.writeHead(500);
    res.end();
    process.exit(1);
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
origin = `http://127.0.0.1:${server.address().port}`;
say({ launch: `${origin}/launch` });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
