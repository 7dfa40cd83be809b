// A real OpenID provider for tests/oauth.rs: npm `oidc-provider` on loopback, issuing JWT access
// tokens audience-bound by resource indicators (RFC 8707), with dynamic client registration
// (the TypeScript SDK registers itself) and the package's own development login and consent
// pages. Prints one JSON line `{"issuer": …}` on stdout once it listens.
//
// Beside the provider, two test routes drive it the way a person would or forge what it never
// issues:
//   POST /test/login {user, scope, resource}   runs the authorization-code flow with PKCE for a
//       pre-registered public client, logging in as `user` on the login page and consenting on
//       the consent page, and answers the token endpoint's JSON (a real issued token).
//   POST /test/mint {claims, kid?, alg?}        signs `claims` with the provider's own key `kid`
//       ("rs" RS256, default; "es" ES256) or, with kid "stranger", with a key it never published
//       (expired, wrong-audience and unknown-key tokens).
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import { browse } from './browse.mjs';

const SCOPES = 'webhooks:read webhooks:write';
const TEST_REDIRECT = 'http://127.0.0.1:9/callback';

async function key(alg, kid) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' } };
}
const keys = { rs: await key('RS256', 'rs'), es: await key('ES256', 'es') };
const stranger = await key('RS256', 'rs-stranger');

const server = createServer();
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [keys.rs.jwk, keys.es.jwk] },
  clients: [{
    client_id: 'test-client',
    token_endpoint_auth_method: 'none',
    redirect_uris: [TEST_REDIRECT],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }],
  scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => ({
        scope: SCOPES,
        audience: resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  pkce: { required: () => true },
  ttl: { AccessToken: 600, AuthorizationCode: 60, Session: 600, Interaction: 600, Grant: 600 },
});
provider.proxy = false;
const callback = provider.callback();

server.on('request', (req, res) => {
  if (req.url.startsWith('/test/')) {
    test(req, res).catch((e) => reply(res, 500, { error: String(e?.stack ?? e) }));
  } else {
    callback(req, res);
  }
});

async function test(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  const args = body ? JSON.parse(body) : {};
  if (req.url === '/test/login') {
    return reply(res, 200, await login(args.user, args.scope ?? SCOPES, args.resource));
  }
  if (req.url === '/test/mint') {
    const signer = args.kid === 'stranger' ? stranger : keys[args.kid ?? 'rs'];
    const token = await new SignJWT(args.claims)
      .setProtectedHeader({ alg: signer.jwk.alg, kid: signer.jwk.kid, typ: 'at+jwt' })
      .sign(signer.privateKey);
    return reply(res, 200, { access_token: token });
  }
  reply(res, 404, { error: 'no such test route' });
}

function reply(res, status, json) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(json));
}

async function login(user, scope, resource) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const auth = new URL(`${issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: 'test-client',
    response_type: 'code',
    redirect_uri: TEST_REDIRECT,
    scope,
    resource,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
  }).toString();
  const code = await browse(auth.href, user, TEST_REDIRECT);
  const token = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: TEST_REDIRECT,
      client_id: 'test-client',
      code_verifier: verifier,
      resource,
    }).toString(),
  });
  const json = await token.json();
  if (!token.ok) throw new Error(`token endpoint: ${JSON.stringify(json)}`);
  return json;
}

console.log(JSON.stringify({ issuer }));
