// The registry client against real registries (Debian's docker-registry 2.8): plain HTTP,
// htpasswd Basic, bearer tokens from the harness's token server, TLS with and without the
// harness CA, multi-arch indexes, moved and missing tags, and a registry killed under load —
// with no secret in any error or observer event, and never a blob download.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ManualClock } from '../../src/clock.ts';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.ts';
import { RegistryCredential } from '../../src/image/credential.ts';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/registry/manifest.ts';
import type { RequestEvent } from '../../src/registry/transport.ts';
import { buildImage, buildIndex, fileLayer, runnableImage } from '../harness/images.ts';
import {
  BASIC_AUTH,
  type Harness,
  type HarnessInfo,
  pushImage,
  type RegistryEndpoint,
  sharedHarness,
  startHarness,
  TOKEN_AUTH,
  TOKEN_LIMITED_AUTH,
  TOKEN_PUBLIC_PREFIX,
  uniqueName,
} from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { readAccessLog } from '../harness/registry.ts';

const WRONG_PASSWORD = 'canary-wr0ng-Pa55-5d4c3b';

/** A small image with distinct content, so each push has its own digest. */
function smallImage(marker: string) {
  return buildImage({ layers: [fileLayer({ '/marker': marker })] });
}

function credential(
  source: string,
  endpoint: RegistryEndpoint,
  auth: { username: string; password: string },
) {
  return new RegistryCredential({ source, key: endpoint.host, ...auth });
}

/** Every way an error can be shown: none may hold a secret. */
function renderings(error: unknown, events: readonly RequestEvent[]): string[] {
  return [
    String(error),
    (error as Error).message,
    JSON.stringify(error),
    inspect(error, { depth: Infinity, showHidden: true }),
    JSON.stringify(events),
    inspect(events, { depth: Infinity }),
  ];
}

function expectNoSecret(texts: readonly string[], secrets: readonly string[]): void {
  for (const text of texts) {
    for (const secret of secrets) expect(text).not.toContain(secret);
  }
}

const blobGets = (file: string) =>
  readAccessLog(file).filter((e) => e.userAgent === 'prepull' && e.path.includes('/blobs/'));

describeIntegration('registry client against real registries', () => {
  let h: HarnessInfo;
  const clients: RegistryClient[] = [];

  function client(options: RegistryClientOptions = {}): RegistryClient {
    const c = new RegistryClient(options);
    clients.push(c);
    return c;
  }

  /** The shared harness's registries: plain ones insecure, the TLS one with the harness CA. */
  function sharedClient(options: RegistryClientOptions = {}): RegistryClient {
    const { plain, basic, tls } = h.registries;
    return client({
      registries: {
        [plain!.host]: { insecure: true },
        [basic!.host]: { insecure: true },
        [tls!.host]: { ca: h.caPem },
      },
      ...options,
    });
  }

  beforeAll(() => {
    h = sharedHarness();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  describe('plain HTTP registry', () => {
    it('resolves a tag to the pushed digest with one HEAD and no blob GET', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('rc-plain');
      const image = smallImage(name);
      await pushImage(plain, name, 'v1', image);
      const events: RequestEvent[] = [];
      const resolved = await sharedClient({ onRequest: (e) => events.push(e) }).resolve(
        `${plain.host}/${name}:v1`,
      );
      expect(resolved).toEqual({
        digest: image.digest,
        mediaType: OCI_MANIFEST,
        size: image.manifest.length,
        source: plain.url,
      });
      expect(events.map((e) => `${e.method} ${e.path} ${e.status}`)).toEqual([
        `HEAD /v2/${name}/manifests/v1 200`,
      ]);
      expect(blobGets(join(h.root, 'logs', 'registry-plain.log'))).toEqual([]);
    });

    it('detects a moved tag: the digest changes when the tag is pushed again', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('rc-moved');
      const first = smallImage(`${name} first`);
      const second = smallImage(`${name} second`);
      const c = sharedClient();
      await pushImage(plain, name, 'stable', first);
      expect((await c.resolve(`${plain.host}/${name}:stable`)).digest).toBe(first.digest);
      await pushImage(plain, name, 'stable', second);
      const moved = await c.resolve(`${plain.host}/${name}:stable`);
      expect(moved.digest).toBe(second.digest);
      expect(moved.digest).not.toBe(first.digest);
    });

    it('confirms a digest reference exists', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('rc-digest');
      const image = smallImage(name);
      await pushImage(plain, name, 'v1', image);
      const resolved = await sharedClient().resolve(`${plain.host}/${name}@${image.digest}`);
      expect(resolved.digest).toBe(image.digest);
      const absent = smallImage(`${name} never pushed`).digest;
      await expect(sharedClient().resolve(`${plain.host}/${name}@${absent}`)).rejects.toMatchObject(
        {
          code: 'ERR_IMAGE_NOT_FOUND',
        },
      );
    });

    it('tells a missing tag (ERR_IMAGE_NOT_FOUND) from a missing repository (ERR_REPOSITORY_NOT_FOUND)', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('rc-missing');
      await pushImage(plain, name, 'v1', smallImage(name));
      const c = sharedClient();
      const tag = await c.resolve(`${plain.host}/${name}:no-such-tag`).catch((e: unknown) => e);
      expect(tag).toMatchObject({ code: 'ERR_IMAGE_NOT_FOUND', retryable: false });
      expect((tag as Error).message).toContain('"no-such-tag"');
      const repo = await c.resolve(`${plain.host}/${name}-nothing:v1`).catch((e: unknown) => e);
      expect(repo).toMatchObject({ code: 'ERR_REPOSITORY_NOT_FOUND', retryable: false });
    });

    it('resolves a multi-arch index and lists its platforms', async () => {
      const plain = h.registries.plain!;
      const name = uniqueName('rc-multi');
      const amd64 = runnableImage({
        marker: `${name} amd64`,
        platform: { os: 'linux', architecture: 'amd64' },
      });
      const arm64 = runnableImage({
        marker: `${name} arm64`,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      });
      const index = buildIndex([amd64, arm64]);
      await pushImage(plain, name, 'v1', index);
      const c = sharedClient();
      const resolved = await c.resolve(`${plain.host}/${name}:v1`, { platforms: true });
      expect(resolved).toMatchObject({
        digest: index.digest,
        mediaType: OCI_INDEX,
        size: index.manifest.length,
      });
      expect(resolved.platforms).toEqual([
        { os: 'linux', architecture: 'amd64', digest: amd64.digest, size: amd64.manifest.length },
        {
          os: 'linux',
          architecture: 'arm64',
          variant: 'v8',
          digest: arm64.digest,
          size: arm64.manifest.length,
        },
      ]);
      // without platforms: the index digest alone, by HEAD
      expect((await c.resolve(`${plain.host}/${name}:v1`)).platforms).toBeUndefined();
      expect(blobGets(join(h.root, 'logs', 'registry-plain.log'))).toEqual([]);
    });
  });

  describe('htpasswd Basic auth', () => {
    it('resolves with the matching credentials', async () => {
      const basic = h.registries.basic!;
      const name = uniqueName('rc-basic');
      const image = smallImage(name);
      await pushImage(basic, name, 'v1', image);
      const resolved = await sharedClient().resolve(`${basic.host}/${name}:v1`, {
        credentials: [credential('secret shop/regcred', basic, BASIC_AUTH)],
      });
      expect(resolved.digest).toBe(image.digest);
    });

    it('needs credentials, refuses wrong ones, and leaks neither', async () => {
      const basic = h.registries.basic!;
      const name = uniqueName('rc-basic-refused');
      await pushImage(basic, name, 'v1', smallImage(name));
      const events: RequestEvent[] = [];
      const c = sharedClient({ onRequest: (e) => events.push(e) });
      const none = await c.resolve(`${basic.host}/${name}:v1`).catch((e: unknown) => e);
      expect(none).toMatchObject({ code: 'ERR_REGISTRY_UNAUTHORIZED', retryable: false });
      const wrong = await c
        .resolve(`${basic.host}/${name}:v1`, {
          credentials: [
            credential('secret shop/stale', basic, {
              username: BASIC_AUTH.username,
              password: WRONG_PASSWORD,
            }),
          ],
        })
        .catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: 'ERR_REGISTRY_UNAUTHORIZED' });
      expect((wrong as Error).message).toContain('secret shop/stale');
      expectNoSecret(renderings(wrong, events), [
        WRONG_PASSWORD,
        BASIC_AUTH.password,
        Buffer.from(`${BASIC_AUTH.username}:${WRONG_PASSWORD}`).toString('base64'),
      ]);
    });
  });

  describe('TLS', () => {
    it('resolves over HTTPS trusting the harness CA', async () => {
      const tls = h.registries.tls!;
      const name = uniqueName('rc-tls');
      const image = smallImage(name);
      await pushImage(tls, name, 'v1', image);
      const resolved = await sharedClient().resolve(`${tls.host}/${name}:v1`);
      expect(resolved).toMatchObject({ digest: image.digest, source: tls.url });
    });

    it('fails with ERR_REGISTRY_TLS, once and not retried, without the CA', async () => {
      const tls = h.registries.tls!;
      const events: RequestEvent[] = [];
      const error = await client({ onRequest: (e) => events.push(e) })
        .resolve(`${tls.host}/anything:v1`)
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_REGISTRY_TLS', retryable: false });
      expect((error as Error).message).toMatch(/CA bundle/);
      expect(events).toHaveLength(1);
      expect(events[0]?.error).toBe('ERR_REGISTRY_TLS');
    });
  });

  describe('bearer tokens from a token server like Docker Hub', () => {
    let th: Harness;
    let token: RegistryEndpoint;

    beforeAll(async () => {
      th = await startHarness({ registries: ['token'], containerd: false, docker: false });
      token = th.info.registries.token!;
    });

    afterAll(async () => {
      await th.stop();
    });

    function tokenClient(options: RegistryClientOptions = {}): RegistryClient {
      // The registry is plain HTTP; its token realm is HTTPS under the harness CA.
      return client({ registries: { [token.host]: { insecure: true, ca: th.caPem } }, ...options });
    }

    const pullScope = (name: string) => `repository:${name}:pull`;
    /** Token fetches for `name`'s pull scope since `mark` (pushes fetch tokens too). */
    const fetchesSince = (mark: number, name: string) =>
      th
        .tokenServer!.requests.slice(mark)
        .filter((r) => r.status === 200 && r.scopes.includes(pullScope(name))).length;
    const mark = () => th.tokenServer!.requests.length;

    it('answers the 401 challenge with a token from the realm, then reuses it', async () => {
      const name = uniqueName('rc-token');
      const image = smallImage(name);
      await pushImage(token, name, 'v1', image);
      const since = mark();
      const events: RequestEvent[] = [];
      const c = tokenClient({ onRequest: (e) => events.push(e) });
      const credentials = [credential('secret shop/hub', token, TOKEN_AUTH)];
      expect((await c.resolve(`${token.host}/${name}:v1`, { credentials })).digest).toBe(
        image.digest,
      );
      expect((await c.resolve(`${token.host}/${name}:v1`, { credentials })).digest).toBe(
        image.digest,
      );
      const realm = new URL(th.tokenServer!.realm);
      expect(
        events.map(
          (e) => `${e.registry === realm.host ? 'realm' : 'registry'} ${e.method} ${e.status}`,
        ),
      ).toEqual(['registry HEAD 401', 'realm GET 200', 'registry HEAD 200', 'registry HEAD 200']);
      expect(fetchesSince(since, name)).toBe(1);
    });

    it('pulls a public repository anonymously', async () => {
      const name = `${TOKEN_PUBLIC_PREFIX}${uniqueName('rc-anon')}`;
      const image = smallImage(name);
      await pushImage(token, name, 'v1', image);
      const since = mark();
      expect((await tokenClient().resolve(`${token.host}/${name}:v1`)).digest).toBe(image.digest);
      const asked = th.tokenServer!.requests.slice(since);
      expect(asked.map((r) => [r.grant, r.granted.length])).toEqual([['anonymous', 1]]);
    });

    it('checks scopes: forbidden for an account without access, unauthorized without credentials or with a wrong password', async () => {
      const name = uniqueName('rc-scope');
      await pushImage(token, name, 'v1', smallImage(name));
      const events: RequestEvent[] = [];
      const c = tokenClient({ onRequest: (e) => events.push(e) });
      const ref = `${token.host}/${name}:v1`;
      const limited = await c
        .resolve(ref, {
          credentials: [credential('secret team/limited', token, TOKEN_LIMITED_AUTH)],
        })
        .catch((e: unknown) => e);
      expect(limited).toMatchObject({ code: 'ERR_REGISTRY_FORBIDDEN', retryable: false });
      expect(await c.resolve(ref).catch((e: unknown) => e)).toMatchObject({
        code: 'ERR_REGISTRY_UNAUTHORIZED',
      });
      const wrong = await c
        .resolve(ref, {
          credentials: [
            credential('secret team/stale', token, {
              username: TOKEN_AUTH.username,
              password: WRONG_PASSWORD,
            }),
          ],
        })
        .catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: 'ERR_REGISTRY_UNAUTHORIZED' });
      expect((wrong as Error).message).toContain('token service');
      expectNoSecret(
        [...renderings(limited, events), ...renderings(wrong, events)],
        [WRONG_PASSWORD, TOKEN_AUTH.password, TOKEN_LIMITED_AUTH.password],
      );
      // the limited account may pull what it is granted
      const allowed = `allowed/${name}`;
      const image = smallImage(allowed);
      await pushImage(token, allowed, 'v1', image);
      const ok = await c.resolve(`${token.host}/${allowed}:v1`, {
        credentials: [credential('secret team/limited', token, TOKEN_LIMITED_AUTH)],
      });
      expect(ok.digest).toBe(image.digest);
    });

    it('fetches a new token exactly when the cached one expires (injected clock)', async () => {
      const name = uniqueName('rc-expiry');
      const image = smallImage(name);
      await pushImage(token, name, 'v1', image);
      const since = mark();
      const clock = new ManualClock(Date.now());
      const c = tokenClient({ clock });
      const credentials = [credential('secret shop/hub', token, TOKEN_AUTH)];
      const ref = `${token.host}/${name}:v1`;
      await c.resolve(ref, { credentials });
      expect(fetchesSince(since, name)).toBe(1);
      // expires_in is 300 s; tokens are renewed 10 s before
      await clock.advance(289_999);
      await c.resolve(ref, { credentials });
      expect(fetchesSince(since, name)).toBe(1);
      await clock.advance(1);
      expect((await c.resolve(ref, { credentials })).digest).toBe(image.digest);
      expect(fetchesSince(since, name)).toBe(2);
      expect(c.tokenFetches).toBe(2);
    });

    it('replaces a cached token the registry stops accepting (signing key rotated)', async () => {
      const name = uniqueName('rc-rotate');
      const image = smallImage(name);
      await pushImage(token, name, 'v1', image);
      const since = mark();
      const events: RequestEvent[] = [];
      const c = tokenClient({ onRequest: (e) => events.push(e) });
      const credentials = [credential('secret shop/hub', token, TOKEN_AUTH)];
      await c.resolve(`${token.host}/${name}:v1`, { credentials });
      th.tokenServer!.rotateKey();
      await th.registry('token').stop();
      await th.registry('token').start();
      events.length = 0;
      expect((await c.resolve(`${token.host}/${name}:v1`, { credentials })).digest).toBe(
        image.digest,
      );
      expect(events.map((e) => `${e.method} ${e.status}`)).toEqual([
        'HEAD 401',
        'GET 200',
        'HEAD 200',
      ]);
      expect(fetchesSince(since, name)).toBe(2);
    });

    it('uses an identity token (docker login refresh token) through the OAuth2 POST', async () => {
      const name = uniqueName('rc-identity');
      const image = smallImage(name);
      await pushImage(token, name, 'v1', image);
      const since = mark();
      const identity = new RegistryCredential({
        source: 'file /root/.docker/config.json',
        key: token.host,
        username: '<token>',
        identityToken: th.tokenServer!.refreshTokenFor(TOKEN_AUTH.username),
      });
      const resolved = await tokenClient().resolve(`${token.host}/${name}:v1`, {
        credentials: [identity],
      });
      expect(resolved.digest).toBe(image.digest);
      const asked = th.tokenServer!.requests.slice(since);
      expect(asked.map((r) => [r.method, r.grant, r.account])).toEqual([
        ['POST', 'refresh_token', TOKEN_AUTH.username],
      ]);
    });

    it('shares one token fetch among concurrent resolves of one repository', async () => {
      const name = uniqueName('rc-concurrent');
      const images = Array.from({ length: 12 }, (_, i) => smallImage(`${name} ${i}`));
      for (const [i, image] of images.entries()) await pushImage(token, name, `t${i}`, image);
      const since = mark();
      const c = tokenClient();
      const credentials = [credential('secret shop/hub', token, TOKEN_AUTH)];
      const resolved = await Promise.all(
        images.map((_, i) => c.resolve(`${token.host}/${name}:t${i}`, { credentials })),
      );
      expect(resolved.map((r) => r.digest)).toEqual(images.map((i) => i.digest));
      expect(fetchesSince(since, name)).toBe(1);
      expect(
        th
          .registry('token')
          .accessLog()
          .filter((e) => e.userAgent === 'prepull' && e.path.includes('/blobs/')),
      ).toEqual([]);
    });
  });

  describe('a registry killed mid-request', () => {
    let outage: Harness;
    let plain: RegistryEndpoint;

    beforeAll(async () => {
      outage = await startHarness({ registries: ['plain'], containerd: false, docker: false });
      plain = outage.info.registries.plain!;
    });

    afterAll(async () => {
      await outage.stop();
    });

    it('fails retryable ERR_REGISTRY_UNREACHABLE while it is down, and resolves once it is back', async () => {
      const name = uniqueName('rc-outage');
      const images = Array.from({ length: 40 }, (_, i) => smallImage(`${name} ${i}`));
      for (const [i, image] of images.entries()) await pushImage(plain, name, `t${i}`, image);
      const registries = { [plain.host]: { insecure: true } };

      // Down: within a short budget, the error says retry.
      const quick = client({
        registries,
        retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 50 },
      });
      await quick.resolve(`${plain.host}/${name}:t0`); // a kept-alive connection to lose
      await outage.registry('plain').stop({ kill: true });
      const down = await quick.resolve(`${plain.host}/${name}:t0`).catch((e: unknown) => e);
      expect(down).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE', retryable: true });
      await outage.registry('plain').start();

      // Killed while resolves are in flight: they retry, and finish once it is back.
      const events: RequestEvent[] = [];
      const patient = client({
        registries,
        retry: { maxAttempts: 30, baseDelayMs: 100, maxDelayMs: 300, budgetMs: 60_000 },
        maxConcurrentPerRegistry: 4,
        onRequest: (e) => events.push(e),
      });
      const pending = images.map((_, i) => patient.resolve(`${plain.host}/${name}:t${i}`));
      while (!events.some((e) => e.status === 200)) await new Promise((r) => setTimeout(r, 1));
      await outage.registry('plain').stop({ kill: true });
      while (!events.some((e) => e.error === 'ERR_REGISTRY_UNREACHABLE')) {
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 500));
      await outage.registry('plain').start();
      const resolved = await Promise.all(pending);
      expect(resolved.map((r) => r.digest)).toEqual(images.map((i) => i.digest));
      const failed = events.filter((e) => e.error !== undefined);
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.every((e) => e.error === 'ERR_REGISTRY_UNREACHABLE')).toBe(true);
    });
  });
});
