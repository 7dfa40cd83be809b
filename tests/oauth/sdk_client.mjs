// The official TypeScript MCP SDK's client against webhook-mcp as an OAuth resource server
// (tests/oauth.rs): `node sdk_client.mjs <mcp url> <user> [scope]`.
//
// It knows only the server's URL. The SDK gets the 401, reads resource_metadata from
// WWW-Authenticate, fetches the RFC 9728 document, discovers the issuer, registers itself
// dynamically, and sends the person to the authorization URL; `browse` is that person (login
// and consent pages of oidc-provider). Then the SDK redeems the code with PKCE, reconnects with
// its token and calls tools. Prints one JSON line: what the calls answered, and what the SDK
// learnt on the way.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { browse } from './browse.mjs';

const [url, user, scope] = process.argv.slice(2);
const REDIRECT = 'http://127.0.0.1:9/sdk-callback';

class MemoryProvider {
  constructor() {
    this.saved = {};
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: 'webhook-mcp oauth test',
      redirect_uris: [REDIRECT],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(scope ? { scope } : {}),
    };
  }
  clientInformation() { return this.saved.client; }
  saveClientInformation(info) { this.saved.client = info; }
  tokens() { return this.saved.tokens; }
  saveTokens(tokens) { this.saved.tokens = tokens; }
  redirectToAuthorization(authorizationUrl) { this.authorizationUrl = authorizationUrl; }
  saveCodeVerifier(v) { this.saved.verifier = v; }
  codeVerifier() { return this.saved.verifier; }
}

const provider = new MemoryProvider();
const connect = async () => {
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
};

let first = 'connected without a token';
try {
  await connect();
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
  first = 'unauthorized';
  const code = await browse(provider.authorizationUrl.href, user, REDIRECT);
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  await transport.finishAuth(code);
}
const { client } = await connect();
const out = { first, authorization: Object.fromEntries(provider.authorizationUrl?.searchParams ?? []) };
const call = async (name, args) => {
  try {
    return await client.callTool({ name, arguments: args });
  } catch (e) {
    return { thrown: String(e?.message ?? e), code: e?.code };
  }
};
out.created = await call('create_webhook', {
  direction: 'inbound',
  provider: 'none',
  allow_unsigned: true,
  description: `made by ${user}`,
});
out.listed = await call('list_webhooks', {});
const claims = provider.saved.tokens?.access_token?.split('.')[1];
out.claims = claims ? JSON.parse(Buffer.from(claims, 'base64url').toString()) : null;
await client.close();
console.log(JSON.stringify(out));
