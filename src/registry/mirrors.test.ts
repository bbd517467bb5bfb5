// Mirror endpoints and the fallback rules: the order endpoints are tried in, path rewrites,
// which failures move on, which error is reported — on their own and through RegistryClient
// against stand-in registries on loopback.
import { afterEach, describe, expect, it } from '@jest/globals';
import { PrepullError } from '../errors.ts';
import { closedPort, type FakeHandler, FakeHttpServer } from '../../test/harness/fake-http.ts';
import { RegistryClient } from './client.ts';
import { Keyring, parseDockerConfigJson } from './credentials.ts';
import { RegistryCredential } from '../image/credential.ts';
import { digestOf, OCI_MANIFEST } from './manifest.ts';
import {
  combineFailures,
  type Endpoint,
  endpointsFor,
  triesNextEndpoint,
  validateMirrorConfig,
} from './mirrors.ts';
import type { RequestEvent } from './transport.ts';

describe('endpointsFor', () => {
  it('is the registry alone without mirrors, over HTTPS unless insecure', () => {
    expect(endpointsFor('quay.io', undefined, undefined)).toEqual([
      {
        host: 'quay.io',
        baseUrl: 'https://quay.io',
        repositoryPrefix: '',
        insecure: false,
        mirror: false,
      },
    ]);
    expect(
      endpointsFor('10.0.0.5:5000', undefined, { '10.0.0.5:5000': { insecure: true } }),
    ).toEqual([
      {
        host: '10.0.0.5:5000',
        baseUrl: 'http://10.0.0.5:5000',
        repositoryPrefix: '',
        insecure: true,
        mirror: false,
      },
    ]);
  });

  it("reaches Docker Hub's API host, and finds its settings under any of its names", () => {
    const [hub] = endpointsFor('docker.io', undefined, { 'index.docker.io': { ca: 'PEM' } });
    expect(hub).toMatchObject({
      host: 'registry-1.docker.io',
      baseUrl: 'https://registry-1.docker.io',
      ca: 'PEM',
    });
  });

  it('puts mirrors first, in order, then the registry', () => {
    const endpoints = endpointsFor(
      'docker.io',
      {
        'docker.io': {
          endpoints: [
            { url: 'https://harbor.corp/', pathPrefix: '/dockerhub/' },
            { url: 'http://10.0.0.9:5000' },
            { url: 'mirror.corp:5000', insecure: true, ca: 'PEM' },
            { url: 'https://art.corp/artifactory/api/docker/hub/v2' },
          ],
        },
      },
      undefined,
    );
    expect(endpoints.map((e) => [e.baseUrl, e.repositoryPrefix, e.insecure, e.mirror])).toEqual([
      ['https://harbor.corp', 'dockerhub/', false, true],
      ['http://10.0.0.9:5000', '', true, true],
      ['http://mirror.corp:5000', '', true, true],
      ['https://art.corp/artifactory/api/docker/hub', '', false, true],
      ['https://registry-1.docker.io', '', false, false],
    ]);
    expect(endpoints[2]?.ca).toBe('PEM');
  });

  it('leaves the registry out when fallbackToUpstream is false', () => {
    const endpoints = endpointsFor(
      'quay.io',
      { 'quay.io': { endpoints: [{ url: 'https://m.corp' }], fallbackToUpstream: false } },
      undefined,
    );
    expect(endpoints.map((e) => e.baseUrl)).toEqual(['https://m.corp']);
  });

  it.each([
    [{ url: 'not a url at all' }, 'is not a URL'],
    [{ url: 'ftp://m.corp' }, 'http:// or https://'],
    [{ url: 'https://user:pw@m.corp' }, 'credentials'],
    [{ url: 'https://m.corp/?x=1' }, 'query'],
  ])('refuses %j', (endpoint, problem) => {
    expect(() => {
      validateMirrorConfig({ 'quay.io': { endpoints: [endpoint] } });
    }).toThrow(
      expect.objectContaining({ code: 'ERR_USAGE', message: expect.stringContaining(problem) }),
    );
  });

  it('refuses a registry with neither mirrors nor fallback', () => {
    expect(() => {
      validateMirrorConfig({ 'quay.io': { endpoints: [], fallbackToUpstream: false } });
    }).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
});

describe('fallback rules', () => {
  const mirror = (n: number): Endpoint => ({
    host: `m${n}`,
    baseUrl: `https://m${n}`,
    repositoryPrefix: '',
    insecure: false,
    mirror: true,
  });
  const upstream: Endpoint = { ...mirror(0), host: 'reg', baseUrl: 'https://reg', mirror: false };
  const fail = (code: PrepullError['code']) => new PrepullError(code, code.toLowerCase());

  it('moves on after any registry failure, but not after the caller gave up', () => {
    for (const code of [
      'ERR_REGISTRY_UNREACHABLE',
      'ERR_REGISTRY_TLS',
      'ERR_REGISTRY_SERVER_ERROR',
      'ERR_REGISTRY_RATE_LIMITED',
      'ERR_IMAGE_NOT_FOUND',
      'ERR_REPOSITORY_NOT_FOUND',
      'ERR_REGISTRY_UNAUTHORIZED',
      'ERR_REGISTRY_FORBIDDEN',
      'ERR_REGISTRY_PROTOCOL',
    ] as const) {
      expect(triesNextEndpoint(fail(code))).toBe(true);
    }
    expect(triesNextEndpoint(fail('ERR_ABORTED'))).toBe(false);
    expect(triesNextEndpoint(fail('ERR_DEADLINE_EXCEEDED'))).toBe(false);
    expect(triesNextEndpoint(new TypeError('bug'))).toBe(false);
  });

  it("reports the registry's own answer when it was asked, listing the mirrors'", () => {
    const error = combineFailures([
      { endpoint: mirror(1), error: fail('ERR_REGISTRY_UNREACHABLE') },
      { endpoint: upstream, error: fail('ERR_IMAGE_NOT_FOUND') },
    ]);
    expect(error.code).toBe('ERR_IMAGE_NOT_FOUND');
    expect(error.message).toBe(
      'err_image_not_found (also tried mirror https://m1: ERR_REGISTRY_UNREACHABLE)',
    );
  });

  it('without the registry, reports the first failure that is not "not found"', () => {
    const error = combineFailures([
      { endpoint: mirror(1), error: fail('ERR_IMAGE_NOT_FOUND') },
      { endpoint: mirror(2), error: fail('ERR_REGISTRY_TLS') },
      { endpoint: mirror(3), error: fail('ERR_REGISTRY_UNREACHABLE') },
    ]);
    expect(error.code).toBe('ERR_REGISTRY_TLS');
    expect(
      combineFailures([
        { endpoint: mirror(1), error: fail('ERR_IMAGE_NOT_FOUND') },
        { endpoint: mirror(2), error: fail('ERR_REPOSITORY_NOT_FOUND') },
      ]).code,
    ).toBe('ERR_IMAGE_NOT_FOUND');
  });
});

const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }),
);
const DIGEST = digestOf(MANIFEST);

const servers: FakeHttpServer[] = [];
const clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function registry(handler: FakeHandler): Promise<FakeHttpServer> {
  const s = await FakeHttpServer.start(handler);
  servers.push(s);
  return s;
}

/** Has `repository:tag` (and nothing else); 404s otherwise, with tags/list telling which. */
const serving =
  (repository: string, authorization?: string): FakeHandler =>
  (req, res) => {
    if (authorization !== undefined && req.headers.authorization !== authorization) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="m"' }).end();
      return;
    }
    if (req.url === `/v2/${repository}/manifests/1`) {
      res.writeHead(200, {
        'content-type': OCI_MANIFEST,
        'docker-content-digest': DIGEST,
        'content-length': MANIFEST.length,
      });
      res.end();
      return;
    }
    res.writeHead(404).end();
  };

describe('RegistryClient with mirrors', () => {
  it('tries mirrors in order and falls back to the registry: unreachable, not found, found', async () => {
    const down = await closedPort();
    const lacking = await registry(serving('nothing/here'));
    const upstream = await registry(serving('team/app'));
    const events: RequestEvent[] = [];
    const client = new RegistryClient({
      registries: { [upstream.host]: { insecure: true } },
      mirrors: {
        [upstream.host]: {
          endpoints: [{ url: `http://127.0.0.1:${down}` }, { url: lacking.url }],
        },
      },
      retry: { maxAttempts: 1 },
      onRequest: (e) => events.push(e),
    });
    clients.push(client);
    const resolved = await client.resolve(`${upstream.host}/team/app:1`);
    expect(resolved).toEqual({
      digest: DIGEST,
      mediaType: OCI_MANIFEST,
      size: MANIFEST.length,
      source: upstream.url,
    });
    expect(events.map((e) => [e.registry, e.method, e.status ?? e.error])).toEqual([
      [`127.0.0.1:${down}`, 'HEAD', 'ERR_REGISTRY_UNREACHABLE'],
      [lacking.host, 'HEAD', 404],
      [lacking.host, 'GET', 404], // tags/list: which kind of "not found"
      [upstream.host, 'HEAD', 200],
    ]);
  });

  it('stops at the first mirror that has the image', async () => {
    const mirror = await registry(serving('team/app'));
    const upstream = await registry(serving('team/app'));
    const client = new RegistryClient({
      registries: { [upstream.host]: { insecure: true } },
      mirrors: { [upstream.host]: { endpoints: [{ url: mirror.url }] } },
    });
    clients.push(client);
    expect((await client.resolve(`${upstream.host}/team/app:1`)).source).toBe(mirror.url);
    expect(upstream.requests).toHaveLength(0);
  });

  it('rewrites paths: the base path before /v2, the prefix before the repository', async () => {
    const mirror = await registry((req, res) => {
      if (req.url === '/artifactory/api/docker/v2/hub-cache/team/app/manifests/1') {
        res.writeHead(200, {
          'content-type': OCI_MANIFEST,
          'docker-content-digest': DIGEST,
          'content-length': 10,
        });
      } else {
        res.writeHead(404);
      }
      res.end();
    });
    const client = new RegistryClient({
      mirrors: {
        'registry.example.test': {
          endpoints: [{ url: `${mirror.url}/artifactory/api/docker`, pathPrefix: 'hub-cache' }],
          fallbackToUpstream: false,
        },
      },
    });
    clients.push(client);
    const resolved = await client.resolve('registry.example.test/team/app:1');
    expect(resolved.source).toBe(`${mirror.url}/artifactory/api/docker`);
  });

  it('never asks the registry when fallback is off, and reports the most telling failure', async () => {
    const down = await closedPort();
    const lacking = await registry(serving('nothing/here'));
    const client = new RegistryClient({
      mirrors: {
        'registry.example.test': {
          endpoints: [{ url: lacking.url }, { url: `http://127.0.0.1:${down}` }],
          fallbackToUpstream: false,
        },
      },
      retry: { maxAttempts: 1 },
    });
    clients.push(client);
    const error = await client.resolve('registry.example.test/team/app:1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE', retryable: true });
    expect((error as Error).message).toContain(
      `also tried mirror ${lacking.url}: ERR_IMAGE_NOT_FOUND`,
    );
  });

  it("sends the image's credentials only to its registry; mirrors get theirs from a lookup", async () => {
    const mirrorAuth = `Basic ${Buffer.from('mirror-user:mirror-pw').toString('base64')}`;
    const mirror = await registry(serving('team/app', mirrorAuth));
    const upstream = await registry(serving('team/app'));
    const mirrors = { [upstream.host]: { endpoints: [{ url: mirror.url }] } };
    const client = new RegistryClient({
      registries: { [upstream.host]: { insecure: true } },
      mirrors,
    });
    clients.push(client);
    const upstreamOnly = new RegistryCredential({
      source: 'secret a/b',
      key: upstream.host,
      username: 'u',
      password: 'upstream-secret',
    });
    // A list: the mirror answers 401 (no credentials for it), the registry resolves.
    const viaList = await client.resolve(`${upstream.host}/team/app:1`, {
      credentials: [upstreamOnly],
    });
    expect(viaList.source).toBe(upstream.url);
    expect(mirror.requests.every((r) => r.headers.authorization === undefined)).toBe(true);

    // A lookup: each endpoint's own entry.
    const config = JSON.stringify({
      auths: {
        [mirror.host]: { auth: Buffer.from('mirror-user:mirror-pw').toString('base64') },
        [upstream.host]: { auth: Buffer.from('u:upstream-secret').toString('base64') },
      },
    });
    const keyring = new Keyring([parseDockerConfigJson(config, 'file config.json')]);
    const viaLookup = await client.resolve(`${upstream.host}/team/app:1`, { credentials: keyring });
    expect(viaLookup.source).toBe(mirror.url);
    expect(mirror.requests.at(-1)?.headers.authorization).toBe(mirrorAuth);
  });

  it('does not move on when the caller cancels', async () => {
    const mirror = await registry(() => undefined); // never answers
    const upstream = await registry(serving('team/app'));
    const client = new RegistryClient({
      registries: { [upstream.host]: { insecure: true } },
      mirrors: { [upstream.host]: { endpoints: [{ url: mirror.url }] } },
    });
    clients.push(client);
    const controller = new AbortController();
    const pending = client.resolve(`${upstream.host}/team/app:1`, { signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 30);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(upstream.requests).toHaveLength(0);
  });
});
