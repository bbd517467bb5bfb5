// The token cache's expiry on an injected clock, shared token fetches, and the 401 dance against
// stand-in registries and token services on loopback.
import { afterEach, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { ManualClock } from '../clock.ts';
import { type FakeHandler, FakeHttpServer, json } from '../../test/harness/fake-http.ts';
import { credentialIdentity, RegistryAuth, TokenService, type TokenRequest } from './auth.ts';
import { RegistryCredential } from '../image/credential.ts';
import { Transport } from './transport.ts';

const CANARY = 'canary-Pa55-9f8e7d';
const EPOCH = Date.parse('2026-03-01T12:00:00Z');

const servers: FakeHttpServer[] = [];
const transports: Transport[] = [];

async function server(handler: FakeHandler): Promise<FakeHttpServer> {
  const s = await FakeHttpServer.start(handler);
  servers.push(s);
  return s;
}

function transport(clock: ManualClock): Transport {
  const t = new Transport({ clock, retry: { maxAttempts: 1 } });
  transports.push(t);
  return t;
}

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function credential(overrides: Partial<ConstructorParameters<typeof RegistryCredential>[0]> = {}) {
  return new RegistryCredential({
    source: 'secret shop/regcred',
    key: 'registry.test',
    username: 'shop',
    password: CANARY,
    ...overrides,
  });
}

describe('credentialIdentity', () => {
  it('is the same for the same secrets, different otherwise, and never the secret', () => {
    const a = credentialIdentity(credential());
    expect(credentialIdentity(credential({ source: 'elsewhere', key: 'other' }))).toBe(a);
    expect(credentialIdentity(credential({ password: 'other' }))).not.toBe(a);
    expect(credentialIdentity(credential({ username: 'other' }))).not.toBe(a);
    expect(a).not.toContain(CANARY);
    expect(credentialIdentity(undefined)).toBe('anonymous');
    expect(credentialIdentity(new RegistryCredential({ source: 's', key: 'k' }))).toBe('anonymous');
  });
});

/** A token service answering `answer` (a function of the request) and counting. */
async function tokenServer(
  answer: (url: URL, body: string) => [number, unknown] = () => [200, { token: 'tok' }],
  delayMs = 0,
): Promise<FakeHttpServer> {
  return server(async (req, res) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const [status, body] = answer(new URL(req.url, 'http://x'), req.body);
    json(res, status, body);
  });
}

function tokenRequest(realm: string, overrides: Partial<TokenRequest> = {}): TokenRequest {
  return {
    registry: 'registry.test',
    challenge: { realm: new URL(realm), service: 'registry.test' },
    scope: 'repository:shop/web:pull',
    insecure: true,
    ...overrides,
  };
}

describe('TokenService', () => {
  it('caches a token until its expiry less the margin, then fetches anew', async () => {
    const clock = new ManualClock(EPOCH);
    let n = 0;
    const s = await tokenServer(() => [200, { token: `tok-${++n}`, expires_in: 300 }]);
    const tokens = new TokenService({ transport: transport(clock), clock });
    const req = tokenRequest(`${s.url}/token`);
    expect(await tokens.token(req)).toBe('tok-1');
    await clock.advance(289_999); // 300 s less the 10 s margin, less 1 ms
    expect(await tokens.token(req)).toBe('tok-1');
    expect(tokens.fetches).toBe(1);
    await clock.advance(1);
    expect(tokens.cached(req)).toBeUndefined();
    expect(await tokens.token(req)).toBe('tok-2');
    expect(tokens.fetches).toBe(2);
  });

  it('defaults to 60 s, reads access_token, and keeps a tenth of short lifetimes as margin', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer((url) =>
      url.searchParams.get('scope') === 'repository:a:pull'
        ? [200, { access_token: 'only-access' }]
        : [200, { token: 't', expires_in: 20, issued_at: '2020-01-01T00:00:00Z' }],
    );
    const tokens = new TokenService({ transport: transport(clock), clock });
    const a = tokenRequest(`${s.url}/token`, { scope: 'repository:a:pull' });
    const b = tokenRequest(`${s.url}/token`, { scope: 'repository:b:pull' });
    expect(await tokens.token(a)).toBe('only-access');
    expect(await tokens.token(b)).toBe('t');
    await clock.advance(17_999);
    expect(tokens.cached(b)).toBe('t'); // issued_at (the server's clock) is not trusted
    await clock.advance(1);
    expect(tokens.cached(b)).toBeUndefined(); // 20 s less 2 s
    await clock.advance(54_000 - 18_000 - 1);
    expect(tokens.cached(a)).toBe('only-access');
    await clock.advance(1);
    expect(tokens.cached(a)).toBeUndefined(); // 60 s less 6 s
  });

  it('shares one fetch among concurrent requests for the same scope and credential', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer(() => [200, { token: 'shared' }], 30);
    const tokens = new TokenService({ transport: transport(clock), clock });
    const req = tokenRequest(`${s.url}/token`);
    const all = await Promise.all(Array.from({ length: 10 }, () => tokens.token(req)));
    expect(all).toEqual(Array.from({ length: 10 }, () => 'shared'));
    expect(s.requests).toHaveLength(1);
  });

  it('keeps tokens apart by scope and by credential', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer();
    const tokens = new TokenService({ transport: transport(clock), clock });
    const base = tokenRequest(`${s.url}/token`);
    await tokens.token(base);
    await tokens.token({ ...base, scope: 'repository:other:pull' });
    await tokens.token({ ...base, credential: credential() });
    await tokens.token({ ...base, credential: credential({ source: 'same secret, other file' }) });
    await tokens.token({ ...base, credential: credential({ password: 'different' }) });
    expect(tokens.fetches).toBe(4);
  });

  it('asks with Basic credentials and the account, or anonymously', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer();
    const tokens = new TokenService({ transport: transport(clock), clock });
    await tokens.token(tokenRequest(`${s.url}/token?x=1`, { credential: credential() }));
    await tokens.token(tokenRequest(`${s.url}/token`, { scope: 'repository:anon:pull' }));
    const [withCredential, anonymous] = s.requests;
    const url = new URL(withCredential!.url, 'http://x');
    expect(url.pathname).toBe('/token');
    expect(url.searchParams.get('x')).toBe('1');
    expect(url.searchParams.get('service')).toBe('registry.test');
    expect(url.searchParams.get('scope')).toBe('repository:shop/web:pull');
    expect(url.searchParams.get('account')).toBe('shop');
    expect(withCredential!.headers.authorization).toBe(
      `Basic ${Buffer.from(`shop:${CANARY}`).toString('base64')}`,
    );
    expect(anonymous!.headers.authorization).toBeUndefined();
  });

  it('uses an identity token as an OAuth2 refresh token', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer(() => [200, { access_token: 'from-refresh', expires_in: 120 }]);
    const tokens = new TokenService({ transport: transport(clock), clock });
    const identity = new RegistryCredential({
      source: 'file config.json',
      key: 'registry.test',
      username: '<token>',
      identityToken: CANARY,
    });
    expect(await tokens.token(tokenRequest(`${s.url}/token`, { credential: identity }))).toBe(
      'from-refresh',
    );
    const [req] = s.requests;
    expect(req?.method).toBe('POST');
    expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(req?.body))).toEqual({
      grant_type: 'refresh_token',
      refresh_token: CANARY,
      client_id: 'prepull',
      service: 'registry.test',
      scope: 'repository:shop/web:pull',
    });
  });

  it.each([
    [401, 'ERR_REGISTRY_UNAUTHORIZED'],
    [403, 'ERR_REGISTRY_FORBIDDEN'],
    [404, 'ERR_REGISTRY_PROTOCOL'],
    [503, 'ERR_REGISTRY_SERVER_ERROR'],
  ])('turns a token service %i into %s, without the secret', async (status, code) => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer(() => [status, { errors: [{ code: 'X', message: 'no' }] }]);
    const tokens = new TokenService({ transport: transport(clock), clock });
    const error = await tokens
      .token(tokenRequest(`${s.url}/token`, { credential: credential() }))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code });
    expect(inspect(error, { depth: 10 })).not.toContain(CANARY);
    expect(JSON.stringify(error)).not.toContain(CANARY);
  });

  it.each([
    ['not JSON', 'hello'],
    ['no token', { expires_in: 60 }],
    ['an empty token', { token: '' }],
  ])('refuses an answer with %s', async (_, body) => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer(() => [200, body]);
    const tokens = new TokenService({ transport: transport(clock), clock });
    await expect(tokens.token(tokenRequest(`${s.url}/token`))).rejects.toMatchObject({
      code: 'ERR_REGISTRY_PROTOCOL',
    });
  });

  it('will not send credentials to a plain-HTTP realm of an HTTPS registry', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await tokenServer();
    const tokens = new TokenService({ transport: transport(clock), clock });
    const req = tokenRequest(`${s.url}/token`, { credential: credential(), insecure: false });
    await expect(tokens.token(req)).rejects.toMatchObject({ code: 'ERR_REGISTRY_PROTOCOL' });
    expect(s.requests).toHaveLength(0);
    // anonymously there is nothing to leak
    await tokens.token({ ...req, credential: undefined });
    expect(s.requests).toHaveLength(1);
  });

  it('invalidates only the token it was told about', async () => {
    const clock = new ManualClock(EPOCH);
    let n = 0;
    const s = await tokenServer(() => [200, { token: `tok-${++n}` }]);
    const tokens = new TokenService({ transport: transport(clock), clock });
    const req = tokenRequest(`${s.url}/token`);
    await tokens.token(req);
    tokens.invalidate(req, 'some-older-token');
    expect(tokens.cached(req)).toBe('tok-1');
    tokens.invalidate(req, 'tok-1');
    expect(await tokens.token(req)).toBe('tok-2');
  });
});

/** A registry that wants `Bearer <one of valid>` and challenges with its token service. */
async function bearerRegistry(realm: () => string, valid: Set<string>): Promise<FakeHttpServer> {
  return server((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token !== undefined && valid.has(token)) {
      res.writeHead(200).end();
      return;
    }
    const error = token === undefined ? '' : ',error="invalid_token"';
    json(
      res,
      401,
      { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
      {
        'www-authenticate': `Bearer realm="${realm()}",service="fake",scope="repository:shop/web:pull"${error}`,
      },
    );
  });
}

describe('RegistryAuth', () => {
  const target = (s: FakeHttpServer) => ({
    registry: s.host,
    key: s.url,
    insecure: true,
  });

  it('answers the first 401 with a token, then sends the cached token up front', async () => {
    const clock = new ManualClock(EPOCH);
    const valid = new Set(['tok-1']);
    let n = 0;
    const tokens = await tokenServer(() => [200, { token: `tok-${++n}` }]);
    const registry = await bearerRegistry(() => `${tokens.url}/token`, valid);
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    expect((await auth.send(target(registry), 'shop/web', undefined, req)).response.status).toBe(
      200,
    );
    expect((await auth.send(target(registry), 'shop/web', undefined, req)).response.status).toBe(
      200,
    );
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      'Bearer tok-1',
      'Bearer tok-1',
    ]);
    expect(tokens.requests).toHaveLength(1);
    expect(new URL(tokens.requests[0]!.url, 'http://x').searchParams.get('service')).toBe('fake');
  });

  it('drops a cached token the registry refuses and fetches a new one, once', async () => {
    const clock = new ManualClock(EPOCH);
    const valid = new Set(['tok-1']);
    let n = 0;
    const tokens = await tokenServer(() => [200, { token: `tok-${++n}`, expires_in: 3600 }]);
    const registry = await bearerRegistry(() => `${tokens.url}/token`, valid);
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    await auth.send(target(registry), 'shop/web', undefined, req);
    valid.clear(); // the registry stops taking tok-1 (a restart with a new signing key)
    valid.add('tok-2');
    const answer = await auth.send(target(registry), 'shop/web', undefined, req);
    expect(answer.response.status).toBe(200);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      'Bearer tok-1',
      'Bearer tok-1',
      'Bearer tok-2',
    ]);
    expect(tokens.requests).toHaveLength(2);
  });

  it('does not loop when a fresh token is refused', async () => {
    const clock = new ManualClock(EPOCH);
    const tokens = await tokenServer(() => [200, { token: 'useless' }]);
    const registry = await bearerRegistry(() => `${tokens.url}/token`, new Set());
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    const answer = await auth.send(target(registry), 'shop/web', undefined, req);
    expect(answer.response.status).toBe(401);
    expect(answer.challenge?.params.error).toBe('invalid_token');
    expect(registry.requests).toHaveLength(2);
    // next time the cached token goes up front; refused, it is replaced once, and that is all
    const again = await auth.send(target(registry), 'shop/web', undefined, req);
    expect(again.response.status).toBe(401);
    expect(registry.requests).toHaveLength(4);
    expect(tokens.requests).toHaveLength(2);
  });

  it('answers a Basic challenge with the credential, and sends it up front afterwards', async () => {
    const clock = new ManualClock(EPOCH);
    const expected = `Basic ${Buffer.from(`shop:${CANARY}`).toString('base64')}`;
    const registry = await server((req, res) => {
      if (req.headers.authorization === expected) res.writeHead(200).end();
      else res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    });
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    const cred = credential();
    expect((await auth.send(target(registry), 'shop/web', cred, req)).response.status).toBe(200);
    expect((await auth.send(target(registry), 'shop/web', cred, req)).response.status).toBe(200);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      expected,
      expected,
    ]);
    // anonymous: nothing to answer Basic with
    const anonymous = await auth.send(target(registry), 'shop/web', undefined, req);
    expect(anonymous.response.status).toBe(401);
    expect(anonymous.challenge?.scheme).toBe('basic');
  });

  it('follows a registry that changes its challenge, from Basic to tokens', async () => {
    const clock = new ManualClock(EPOCH);
    const tokens = await tokenServer(() => [200, { token: 'tok' }]);
    const basic = `Basic ${Buffer.from(`shop:${CANARY}`).toString('base64')}`;
    let mode: 'basic' | 'bearer' = 'basic';
    const registry = await server((req, res) => {
      const ok =
        mode === 'basic'
          ? req.headers.authorization === basic
          : req.headers.authorization === 'Bearer tok';
      if (ok) res.writeHead(200).end();
      else if (mode === 'basic')
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      else
        res
          .writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="s"` })
          .end();
    });
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    const cred = credential();
    expect((await auth.send(target(registry), 'shop/web', cred, req)).response.status).toBe(200);
    mode = 'bearer';
    expect((await auth.send(target(registry), 'shop/web', cred, req)).response.status).toBe(200);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      basic,
      basic,
      'Bearer tok',
    ]);
  });

  it('sends a registry token as the bearer token itself', async () => {
    const clock = new ManualClock(EPOCH);
    const tokens = await tokenServer();
    const registry = await bearerRegistry(() => `${tokens.url}/token`, new Set([CANARY]));
    const auth = new RegistryAuth({ transport: transport(clock), clock });
    const req = {
      method: 'HEAD' as const,
      url: new URL(`${registry.url}/v2/shop/web/manifests/1`),
    };
    const cred = new RegistryCredential({ source: 's', key: 'k', registryToken: CANARY });
    expect((await auth.send(target(registry), 'shop/web', cred, req)).response.status).toBe(200);
    expect(tokens.requests).toHaveLength(0);
  });
});
