// RegistryClient.resolve against stand-in registries on loopback: HEAD first, GET only when the
// HEAD cannot tell, digests verified, answers mapped to coded errors, credentials tried in
// order — and no secret in any error or observer event.
import { afterEach, describe, expect, it } from '@jest/globals';
import type { ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import {
  type FakeHandler,
  FakeHttpServer,
  json,
  type RecordedRequest,
} from '../../test/harness/fake-http.ts';
import { RegistryClient, type RegistryClientOptions } from './client.ts';
import { RegistryCredential } from '../image/credential.ts';
import {
  DOCKER_MANIFEST_LIST,
  digestOf,
  MANIFEST_ACCEPT,
  OCI_INDEX,
  OCI_MANIFEST,
} from './manifest.ts';
import type { RequestEvent } from './transport.ts';

const CANARY = 'canary-Pa55-1a2b3c';

const manifest = (marker: string): Buffer =>
  Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { marker }, layers: [] }),
  );
const AMD64 = manifest('amd64');
const ARM = manifest('arm');
const INDEX = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        digest: digestOf(AMD64),
        size: AMD64.length,
        platform: { os: 'linux', architecture: 'amd64' },
      },
      {
        mediaType: OCI_MANIFEST,
        digest: digestOf(ARM),
        size: ARM.length,
        platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
      },
      // an attestation: no platform, left out
      { mediaType: OCI_MANIFEST, digest: digestOf(manifest('att')), size: 10 },
    ],
  }),
);

interface Stored {
  readonly body: Buffer;
  readonly mediaType: string;
}

interface FakeRegistryOptions {
  /** "repo:reference" → manifest; a manifest is also served by its digest. */
  readonly manifests: Readonly<Record<string, Stored>>;
  readonly omitDigestHeader?: boolean;
  /** Serve this body instead of the stored one on GET (a tampering registry). */
  readonly tamper?: Buffer;
  /** Answer every manifest request with this status. */
  readonly status?: number;
  /** Require this Authorization, challenging with Basic. */
  readonly basic?: string;
}

function fakeRegistry(options: FakeRegistryOptions): FakeHandler {
  const byPath = new Map<string, Stored>();
  for (const [key, stored] of Object.entries(options.manifests)) {
    const [repo, ref] = key.split(':') as [string, string];
    byPath.set(`/v2/${repo}/manifests/${ref}`, stored);
    byPath.set(`/v2/${repo}/manifests/${digestOf(stored.body)}`, stored);
  }
  const repos = new Set(Object.keys(options.manifests).map((k) => k.split(':')[0]));
  return (req: RecordedRequest, res: ServerResponse) => {
    if (options.basic !== undefined && req.headers.authorization !== options.basic) {
      json(
        res,
        401,
        { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
        {
          'www-authenticate': 'Basic realm="fake"',
        },
      );
      return;
    }
    if (options.status !== undefined) {
      json(res, options.status, { errors: [{ code: 'DENIED', message: 'nope' }] });
      return;
    }
    const tags = /^\/v2\/(.+)\/tags\/list/.exec(req.url);
    if (tags) {
      if (repos.has(tags[1])) json(res, 200, { name: tags[1], tags: [] });
      else
        json(res, 404, {
          errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }],
        });
      return;
    }
    const stored = byPath.get(req.url);
    if (stored === undefined) {
      json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
      return;
    }
    const body = req.method === 'GET' && options.tamper ? options.tamper : stored.body;
    res.writeHead(200, {
      'content-type': stored.mediaType,
      'content-length': body.length,
      ...(options.omitDigestHeader === true
        ? {}
        : { 'docker-content-digest': digestOf(stored.body) }),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}

const servers: FakeHttpServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(
  handler: FakeHandler,
  options: RegistryClientOptions = {},
): Promise<{ s: FakeHttpServer; client: RegistryClient; events: RequestEvent[] }> {
  const s = await FakeHttpServer.start(handler);
  servers.push(s);
  const events: RequestEvent[] = [];
  const client = new RegistryClient({
    registries: { [s.host]: { insecure: true } },
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
    onRequest: (e) => events.push(e),
    ...options,
  });
  clients.push(client);
  return { s, client, events };
}

const single = { 'team/app:1': { body: AMD64, mediaType: OCI_MANIFEST } };
const multi = { 'team/multi:1': { body: INDEX, mediaType: OCI_INDEX } };

describe('RegistryClient.resolve', () => {
  it('resolves a tag with one HEAD asking for all four manifest types', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: single }));
    const resolved = await client.resolve(`${s.host}/team/app:1`);
    expect(resolved).toEqual({
      digest: digestOf(AMD64),
      mediaType: OCI_MANIFEST,
      size: AMD64.length,
      source: s.url,
    });
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]).toMatchObject({ method: 'HEAD', url: '/v2/team/app/manifests/1' });
    expect(s.requests[0]?.headers.accept).toBe(MANIFEST_ACCEPT);
    expect(MANIFEST_ACCEPT.split(', ')).toEqual([
      OCI_INDEX,
      DOCKER_MANIFEST_LIST,
      OCI_MANIFEST,
      'application/vnd.docker.distribution.manifest.v2+json',
    ]);
  });

  it('hashes the manifest when the registry sends no digest header', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: single, omitDigestHeader: true }));
    const resolved = await client.resolve(`${s.host}/team/app:1`);
    expect(resolved.digest).toBe(digestOf(AMD64));
    expect(s.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
  });

  it('confirms a digest reference with a HEAD', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: single }));
    const ref = `${s.host}/team/app@${digestOf(AMD64)}`;
    expect((await client.resolve(ref)).digest).toBe(digestOf(AMD64));
    expect(s.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      `HEAD /v2/team/app/manifests/${digestOf(AMD64)}`,
    ]);
  });

  it('refuses a registry that answers another digest for a digest reference', async () => {
    const wrong = digestOf(Buffer.from('other'));
    const { s, client } = await setup((req, res) => {
      res
        .writeHead(200, {
          'content-type': OCI_MANIFEST,
          'docker-content-digest': wrong,
          'content-length': 10,
        })
        .end();
    });
    await expect(client.resolve(`${s.host}/team/app@${digestOf(AMD64)}`)).rejects.toMatchObject({
      code: 'ERR_REGISTRY_PROTOCOL',
    });
  });

  it('lists the platforms of an index from one GET by digest, verified', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: multi }));
    const resolved = await client.resolve(`${s.host}/team/multi:1`, { platforms: true });
    expect(resolved.digest).toBe(digestOf(INDEX));
    expect(resolved.platforms).toEqual([
      { os: 'linux', architecture: 'amd64', digest: digestOf(AMD64), size: AMD64.length },
      { os: 'linux', architecture: 'arm', variant: 'v7', digest: digestOf(ARM), size: ARM.length },
    ]);
    expect(s.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'HEAD /v2/team/multi/manifests/1',
      `GET /v2/team/multi/manifests/${digestOf(INDEX)}`,
    ]);
    // without `platforms`, no GET
    await client.resolve(`${s.host}/team/multi:1`);
    expect(s.requests).toHaveLength(3);
  });

  it('refuses an index whose body does not hash to its digest', async () => {
    const tampered = Buffer.from(INDEX.toString().replace('amd64', 'amd65'));
    const { s, client } = await setup(fakeRegistry({ manifests: multi, tamper: tampered }));
    await expect(
      client.resolve(`${s.host}/team/multi:1`, { platforms: true }),
    ).rejects.toMatchObject({
      code: 'ERR_REGISTRY_PROTOCOL',
      message: expect.stringContaining('hashes to'),
    });
  });

  it('refuses documents that are not image manifests', async () => {
    const { s, client } = await setup(
      fakeRegistry({
        manifests: {
          'team/app:1': { body: Buffer.from('{"hello":1}'), mediaType: 'application/json' },
        },
      }),
    );
    await expect(client.resolve(`${s.host}/team/app:1`)).rejects.toMatchObject({
      code: 'ERR_REGISTRY_PROTOCOL',
      message: expect.stringContaining('"application/json"'),
    });
  });

  it('tells a missing tag from a missing repository', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: single }));
    await expect(client.resolve(`${s.host}/team/app:2`)).rejects.toMatchObject({
      code: 'ERR_IMAGE_NOT_FOUND',
      retryable: false,
      message: expect.stringContaining('tag "2"'),
    });
    await expect(client.resolve(`${s.host}/team/nothing:1`)).rejects.toMatchObject({
      code: 'ERR_REPOSITORY_NOT_FOUND',
      retryable: false,
    });
    expect(s.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'HEAD /v2/team/app/manifests/2',
      'GET /v2/team/app/tags/list?n=1',
      'HEAD /v2/team/nothing/manifests/1',
      'GET /v2/team/nothing/tags/list?n=1',
    ]);
  });

  it.each([
    [403, 'ERR_REGISTRY_FORBIDDEN', false],
    [429, 'ERR_REGISTRY_RATE_LIMITED', true],
    [500, 'ERR_REGISTRY_SERVER_ERROR', true],
    [400, 'ERR_REGISTRY_PROTOCOL', false],
    [302, 'ERR_REGISTRY_PROTOCOL', false],
  ])('maps HTTP %i to %s', async (status, code, retryable) => {
    const { s, client } = await setup(fakeRegistry({ manifests: single, status }));
    const error = await client.resolve(`${s.host}/team/app:1`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code, retryable });
  });

  it('needs credentials when the registry challenges and none are given', async () => {
    const basic = `Basic ${Buffer.from(`u:${CANARY}`).toString('base64')}`;
    const { s, client } = await setup(fakeRegistry({ manifests: single, basic }));
    await expect(client.resolve(`${s.host}/team/app:1`)).rejects.toMatchObject({
      code: 'ERR_REGISTRY_UNAUTHORIZED',
      message: expect.stringContaining('none matched'),
    });
  });
});

describe('RegistryClient and a registry that asks to wait', () => {
  it('probes once with maxAttempts 1 and tells how long the registry asked to wait', async () => {
    const { s, client, events } = await setup((_req, res) => {
      res.writeHead(429, { 'retry-after': '120' }).end();
    });
    const ref = `${s.host}/team/app:1`;
    expect(client.retryAfterMs(ref)).toBeUndefined();
    await expect(client.resolve(ref, { maxAttempts: 1 })).rejects.toMatchObject({
      code: 'ERR_REGISTRY_RATE_LIMITED',
    });
    expect(events).toHaveLength(1);
    const asked = client.retryAfterMs(ref);
    expect(asked).toBeGreaterThan(110_000);
    expect(asked).toBeLessThanOrEqual(120_000);
    // Another repository on the same registry is held too: the wish is the registry's.
    expect(client.retryAfterMs(`${s.host}/other/thing:2`)).toBeGreaterThan(110_000);
  });
});

describe('credentials', () => {
  const cred = (source: string, password: string) =>
    new RegistryCredential({ source, key: 'k', username: 'u', password });
  const basicFor = (password: string) => `Basic ${Buffer.from(`u:${password}`).toString('base64')}`;

  it('tries each matching credential in order and uses the first accepted', async () => {
    const { s, client } = await setup(fakeRegistry({ manifests: single, basic: basicFor(CANARY) }));
    const resolved = await client.resolve(`${s.host}/team/app:1`, {
      credentials: [cred('secret a/wrong', 'wrong'), cred('secret a/right', CANARY)],
    });
    expect(resolved.digest).toBe(digestOf(AMD64));
    // the first request learns the challenge; no attempt is anonymous after that
    expect(s.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      basicFor('wrong'),
      basicFor(CANARY),
    ]);
  });

  it('reports every credential refused, and never falls back to anonymous', async () => {
    const { s, client } = await setup(
      fakeRegistry({ manifests: single, basic: basicFor('other') }),
    );
    const error = await client
      .resolve(`${s.host}/team/app:1`, {
        credentials: [cred('secret a/one', CANARY), cred('secret a/two', `${CANARY}-2`)],
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_REGISTRY_UNAUTHORIZED' });
    expect((error as Error).message).toContain(
      'each of 2 matching credentials was tried: secret a/one, secret a/two',
    );
    expect(s.requests.filter((r) => r.headers.authorization === undefined)).toHaveLength(1);
  });

  it('keeps secrets out of errors, their JSON and inspection, and observer events', async () => {
    const { s, client, events } = await setup(
      fakeRegistry({ manifests: single, basic: basicFor('other') }),
    );
    const secret = new RegistryCredential({
      source: 'secret a/canary',
      key: s.host,
      username: 'u',
      password: CANARY,
      identityToken: `${CANARY}-identity`,
    });
    const error = await client
      .resolve(`${s.host}/team/app:1`, { credentials: [secret] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_REGISTRY_UNAUTHORIZED' });
    for (const text of [
      (error as Error).message,
      String(error),
      JSON.stringify(error),
      inspect(error, { depth: 20, showHidden: true }),
      JSON.stringify(events),
      inspect(events, { depth: 20 }),
    ]) {
      expect(text).not.toContain(CANARY);
      expect(text).not.toContain(Buffer.from(`u:${CANARY}`).toString('base64'));
    }
  });
});
