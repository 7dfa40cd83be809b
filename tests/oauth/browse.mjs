// A person at a browser, for oidc-provider's development pages (tests/oauth/idp.mjs and
// sdk_client.mjs share it).
// The browser's part of the authorization-code flow: follow redirects by hand, keep cookies,
// fill the development login form with `user` and submit the consent form, until the
// provider redirects to the client with a code; then redeem it at the token endpoint.
export async function browse(authorizationUrl, user, redirectUri) {
  const jar = new Map();
  const send = async (url, init = {}) => {
    const headers = { ...(init.headers ?? {}), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  };
  let url = authorizationUrl;
  for (let hop = 0; hop < 20; hop++) {
    const res = await send(url);
    const location = res.headers.get('location');
    if (location) {
      const next = new URL(location, url);
      if (next.href.startsWith(redirectUri)) {
        const code = next.searchParams.get('code');
        if (!code) throw new Error(`the provider refused: ${next.search}`);
        return code;
      }
      url = next.href;
      continue;
    }
    const page = await res.text();
    const action = page.match(/action="([^"]+)"/)?.[1];
    const prompt = page.match(/name="prompt" value="([^"]+)"/)?.[1];
    if (!action || !prompt) throw new Error(`unexpected page (${res.status}): ${page.slice(0, 500)}`);
    const form = new URLSearchParams({ prompt, login: user, password: 'any' });
    const posted = await send(new URL(action, url).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    url = new URL(posted.headers.get('location'), url).href;
  }
  throw new Error('too many redirects');
}

