// npm `oidc-provider` (panva, OpenID Certified) as the authorization server in front of the sandbox's FHIR API,
// for ChartLink's interop tests (tests/tests/oidc_provider.rs).
//
//     node server.mjs <plain|smart> <fhir-base>
//
// Listens on a free loopback port. Prints one JSON line when ready, {"issuer": URL, "scopes_supported": [...]}, then
// one JSON line per provider event the tests count (grant.success with its grant_type, grant.error, grant.revoked,
// revocation.error).
// Nothing it prints carries a token, a code or health information.
//
// Two forms:
// - `plain`: oidc-provider's defaults (devInteractions login and consent pages, only `openid` and `offline_access`
//   as OpenID scopes, `offline_access` dropped unless the request carries prompt=consent (OIDC Core §11), PKCE
//   required for public clients, refresh-token rotation for public clients, no revocation endpoint), plus the least an
//   authorization server for an API needs: the clients, the FHIR API as its one resource server (JWT access tokens
//   naming it as `aud`) knowing only whole-type SMART v2 scopes (`patient/Observation.rs`, no category-restricted
//   ones), and the patient in context (a `patient` claim in the access token and the token response; the patient is
//   the login name).
// - `smart`: SMART-friendly: the SMART scopes registered (v2 whole-type and category-restricted), `fhirUser` and
//   `launch/patient`, SMART's `aud` parameter taken as the resource indicator (RFC 8707; an unknown one is refused),
//   refresh tokens for every grant of a client allowed them (SMART's offline_access, without OIDC's prompt rule),
//   RFC 7009 revocation, PKCE required for every client, and short-lived access tokens for client
//   `chartlink-short` (30 s).
//
// Clients (public, native, redirect http://127.0.0.1/callback on any port, RFC 8252 §7.3): `chartlink`;
// `chartlink-short`; `chartlink-norefresh` (not allowed the refresh_token grant: a provider that never issues one).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const [form, fhirBase] = process.argv.slice(2);
if (!['plain', 'smart'].includes(form) || !fhirBase) {
  process.stderr.write('usage: node server.mjs <plain|smart> <fhir-base>\n');
  process.exit(2);
}
const smart = form === 'smart';

const TYPES = [
  'Patient', 'AllergyIntolerance', 'Condition', 'Observation', 'DiagnosticReport', 'MedicationRequest',
  'MedicationDispense', 'MedicationStatement', 'Immunization', 'Procedure', 'Encounter', 'DocumentReference',
  'Binary', 'Appointment', 'CarePlan', 'Goal', 'CareTeam', 'Device', 'ServiceRequest', 'Coverage',
  'QuestionnaireResponse', 'RelatedPerson', 'Practitioner', 'Organization', 'Location', 'Medication',
];
const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const CATEGORIES = [
  'laboratory', 'vital-signs', 'vital-sign', 'social-history', 'sdoh', 'survey', 'exam', 'imaging', 'procedure',
  'therapy', 'activity', 'functional-status',
];
const resourceScopes = TYPES.map((t) => `patient/${t}.rs`);
if (smart) {
  resourceScopes.push('patient/*.rs');
  for (const c of CATEGORIES) resourceScopes.push(`patient/Observation.rs?category=${OBS_CATEGORY}|${c}`);
}
const oidcScopes = smart
  ? ['openid', 'offline_access', 'fhirUser', 'profile', 'launch/patient']
  : ['openid', 'offline_access'];

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `chartlink-${form}`, use: 'sig', alg: 'RS256' };

const client = (clientId, grantTypes) => ({
  client_id: clientId,
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: grantTypes,
  response_types: ['code'],
});

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const configuration = {
  clients: [
    client('chartlink', ['authorization_code', 'refresh_token']),
    client('chartlink-short', ['authorization_code', 'refresh_token']),
    client('chartlink-norefresh', ['authorization_code']),
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: oidcScopes,
  // The patient in context is the login name (devInteractions accepts any login).
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return smart ? { sub, fhirUser: `${fhirBase}/Patient/${sub}` } : { sub };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: smart },
    resourceIndicators: {
      enabled: true,
      // plain: every token is for the one API; smart: SMART's `aud` names it (checked in getResourceServerInfo).
      defaultResource: (ctx) => (smart ? ctx.oidc.params.aud : fhirBase),
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resource, oidcClient) {
        if (resource !== fhirBase) throw new errors.InvalidTarget();
        const info = {
          scope: resourceScopes.join(' '),
          audience: fhirBase,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
        if (smart) info.accessTokenTTL = oidcClient.clientId === 'chartlink-short' ? 30 : 300;
        return info;
      },
    },
  },
  extraTokenClaims(_ctx, token) {
    return token.accountId ? { patient: token.accountId } : undefined;
  },
};
if (smart) {
  configuration.extraParams = ['aud', 'launch'];
  configuration.claims = { openid: ['sub'], fhirUser: ['fhirUser'] };
  configuration.pkce = { required: () => true };
  // SMART's offline_access asks for a refresh token; OIDC's prompt=consent rule is not applied.
  configuration.issueRefreshToken = (_ctx, c) => c.grantTypeAllowed('refresh_token');
}

const provider = new Provider(issuer, configuration);

// SMART's launch context in the token response (App Launch 2.2 §token-response): `patient`, from the access token
// this provider just signed.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'token' && ctx.status === 200 && typeof ctx.body?.access_token === 'string') {
    const [, payload] = ctx.body.access_token.split('.');
    const claims = payload ? JSON.parse(Buffer.from(payload, 'base64url').toString()) : {};
    if (claims.patient) ctx.body.patient = claims.patient;
  }
});

const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
provider.on('grant.success', (ctx) => say({ event: 'grant.success', grant_type: ctx.oidc.params.grant_type }));
provider.on('grant.error', (ctx, err) => say({ event: 'grant.error', grant_type: ctx.oidc.params?.grant_type, error: err.error }));
provider.on('revocation.error', (_ctx, err) => say({ event: 'revocation.error', error: err.error }));
provider.on('grant.revoked', () => say({ event: 'grant.revoked' }));

server.on('request', provider.callback());
say({ issuer, scopes_supported: [...oidcScopes, ...resourceScopes] });
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
