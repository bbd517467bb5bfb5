// deploy/'s CRDs and RBAC loaded into the project's Kubernetes API test server
// (docs/kube-api-server.md): what the API server does with PrePulls (defaults, 422s naming the
// field), whether its verdicts agree with validatePrePull (what prepull sync applies to files),
// a NodeImageCache status round trip, and what the shipped ServiceAccount may and may not do.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { Agent, fetch } from 'undici';
import { DEFAULTS, validatePrePull } from '../../src/api/prepull.ts';
import { nodeImageCacheStatus as agentStatus } from '../../src/api/nodeimagecache.ts';
import { KubeApiServer } from '../kube-api-server/index.ts';
import { failure, kubeConfigFrom } from '../kube-api-server/fixtures.ts';
import { DEPLOY } from './manifests.ts';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return -- API answers are untyped JSON */
type Obj = any;

const GROUP = 'prepull.dev';
const VERSION = 'v1alpha1';
const NS = 'shop';
const pp = { group: GROUP, version: VERSION, namespace: NS, plural: 'prepulls' };
const nic = { group: GROUP, version: VERSION, plural: 'nodeimagecaches' };

let server: KubeApiServer;
let custom: k8s.CustomObjectsApi;
let serial = 0;

beforeAll(async () => {
  server = await KubeApiServer.start();
  // What the agent's end-to-end test loads too. The test server serves no DaemonSet, Service
  // or ResourceQuota, so deploy/ is applied file by file rather than whole.
  server.applyManifests(join(DEPLOY, 'namespace.yaml'));
  server.applyManifests(join(DEPLOY, 'crds'));
  server.applyManifests(join(DEPLOY, 'rbac.yaml'));
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  const kc = kubeConfigFrom(server.adminKubeconfig());
  custom = kc.makeApiClient(k8s.CustomObjectsApi);
});

afterAll(async () => {
  await server.stop();
});

function prePull(spec: unknown, name = `pp-${++serial}`): Obj {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'PrePull',
    metadata: { name, namespace: NS },
    spec,
  };
}

/** Creates the object; the created object, or the fields a 422 names. */
async function admit(body: Obj): Promise<{ created?: Obj; fields?: string[]; status?: Obj }> {
  const call = custom.createNamespacedCustomObject({ ...pp, body });
  const created = await call.then(
    (object: Obj) => ({ created: object }),
    () => undefined,
  );
  if (created !== undefined) return created;
  const { code, body: status } = await failure(call);
  if (code !== 422) throw new Error(`expected 201 or 422, got ${code}: ${JSON.stringify(status)}`);
  return { fields: status.details.causes.map((c: Obj) => c.field).sort(), status };
}

const images = (n: number): { image: string }[] =>
  Array.from({ length: n }, (_, i) => ({ image: `registry.internal:5000/app/img${i}:1` }));

describe('PrePull admission', () => {
  it('fills in the defaults of src/api/prepull.ts', async () => {
    const { created } = await admit(prePull({ images: [{ image: 'nginx:1.27' }] }));
    expect(created.spec).toEqual({ images: [{ image: 'nginx:1.27' }], ...DEFAULTS });
    expect(created.status).toBeUndefined();
  });

  it('keeps what is given', async () => {
    const spec = {
      images: [{ image: 'registry.internal:5000/shop/web:1.4.2' }],
      nodeSelector: { 'node-role.kubernetes.io/worker': '' },
      imagePullSecrets: [{ name: 'regcred' }],
      pullPolicy: 'Always',
      verify: 'None',
      schedule: '*/30 * * * *',
      timeZone: 'Europe/Berlin',
      scheduleJitterSeconds: 0,
      pin: false,
      timeoutSeconds: 600,
      backoffLimit: 0,
      rollout: { maxConcurrentNodes: '25%', paused: false },
      nodeLabel: 'shop-images',
      cleanup: 'Remove',
    };
    expect((await admit(prePull(spec))).created.spec).toEqual(spec);
  });

  it.each([
    ['no images', { images: [] }, 'FieldValueInvalid', 'spec.images'],
    ['257 images', { images: images(257) }, 'FieldValueTooMany', 'spec.images'],
    ['an entry without image', { images: [{}] }, 'FieldValueRequired', 'spec.images[0].image'],
    [
      'a bad pullPolicy',
      { images: images(1), pullPolicy: 'Sometimes' },
      'FieldValueNotSupported',
      'spec.pullPolicy',
    ],
    [
      'a bad verify',
      { images: images(1), verify: 'Maybe' },
      'FieldValueNotSupported',
      'spec.verify',
    ],
    [
      'a negative timeout',
      { images: images(1), timeoutSeconds: -5 },
      'FieldValueInvalid',
      'spec.timeoutSeconds',
    ],
    [
      'maxConcurrentNodes 0',
      { images: images(1), rollout: { maxConcurrentNodes: 0 } },
      'FieldValueInvalid',
      'spec.rollout.maxConcurrentNodes',
    ],
    [
      'maxConcurrentNodes "150%"',
      { images: images(1), rollout: { maxConcurrentNodes: '150%' } },
      'FieldValueInvalid',
      'spec.rollout.maxConcurrentNodes',
    ],
    [
      'a nodeLabel with a slash',
      { images: images(1), nodeLabel: 'a/b' },
      'FieldValueInvalid',
      'spec.nodeLabel',
    ],
    [
      'a bad cleanup',
      { images: images(1), cleanup: 'Delete' },
      'FieldValueNotSupported',
      'spec.cleanup',
    ],
    [
      'a UTC offset for a time zone',
      { images: images(1), timeZone: '+01:00' },
      'FieldValueInvalid',
      'spec.timeZone',
    ],
    [
      'a jitter over an hour',
      { images: images(1), scheduleJitterSeconds: 3601 },
      'FieldValueInvalid',
      'spec.scheduleJitterSeconds',
    ],
    ['no spec', undefined, 'FieldValueRequired', 'spec'],
  ])('refuses %s with 422 naming the field', async (_what, spec, reason, field) => {
    const { fields, status } = await admit(prePull(spec, 'bad'));
    expect(status.code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.details).toMatchObject({ name: 'bad', group: GROUP, kind: 'PrePull' });
    expect(fields).toEqual([field]);
    expect(status.details.causes[0].reason).toBe(reason);
    expect(status.message).toContain(`PrePull.${GROUP} "bad" is invalid: ${field}`);
  });

  it('answers `spec.pullPolicy` with the supported values, as kube-apiserver words it', async () => {
    const { status } = await admit(prePull({ images: images(1), pullPolicy: 'Never' }));
    expect(status.details.causes).toEqual([
      {
        reason: 'FieldValueNotSupported',
        message: 'Unsupported value: "Never": supported values: "IfNotPresent", "Always"',
        field: 'spec.pullPolicy',
      },
    ]);
  });
});

// validatePrePull names a map key as spec.nodeSelector["key"]; the API server as .key.
function normalise(field: string): string {
  return field.replace(/\["((?:[^"\\]|\\.)*)"\]/g, (_m, key: string) => `.${key}`);
}

const long = 'a'.repeat(64);

// Cases where an OpenAPI schema can express validatePrePull's rule: both must accept, or both
// refuse naming the same fields.
const AGREE: [string, unknown][] = [
  ['minimal', { images: [{ image: 'nginx' }] }],
  [
    'every field',
    {
      images: images(3),
      nodeSelector: { a: 'b', 'example.com/c': '' },
      imagePullSecrets: [{ name: 'x.y' }],
      pullPolicy: 'Always',
      verify: 'None',
      schedule: '0 * * * *',
      timeZone: 'America/Argentina/Buenos_Aires',
      scheduleJitterSeconds: 3600,
      pin: false,
      timeoutSeconds: 86_400,
      backoffLimit: 100,
    },
  ],
  ['a time zone without a schedule', { images: images(1), timeZone: 'Etc/GMT+5' }],
  ['a null time zone', { images: images(1), schedule: '0 2 * * *', timeZone: null }],
  ['no jitter', { images: images(1), schedule: '0 2 * * *', scheduleJitterSeconds: 0 }],
  ['an empty time zone', { images: images(1), timeZone: '' }],
  ['a time zone with a space', { images: images(1), timeZone: 'Europe/New York' }],
  ['a time zone part of 15 characters', { images: images(1), timeZone: 'America/Abcdefghijklmno' }],
  ['a time zone part starting with "-"', { images: images(1), timeZone: 'Etc/-5' }],
  ['a time zone ending in "/"', { images: images(1), timeZone: 'Europe/' }],
  ['a time zone of 65 characters', { images: images(1), timeZone: `${'A/'.repeat(32)}B` }],
  ['a time zone that is a number', { images: images(1), timeZone: 1 }],
  ['a negative jitter', { images: images(1), scheduleJitterSeconds: -1 }],
  ['a jitter over an hour', { images: images(1), scheduleJitterSeconds: 3601 }],
  ['a fractional jitter', { images: images(1), scheduleJitterSeconds: 1.5 }],
  ['256 images', { images: images(256) }],
  ['an image with spaces around it', { images: [{ image: '  nginx:1  ' }] }],
  ['a null schedule', { images: images(1), schedule: null }],
  ['an empty schedule', { images: images(1), schedule: '' }],
  ['the smallest timeout and backoff', { images: images(1), timeoutSeconds: 1, backoffLimit: 0 }],
  ['no images', { images: [] }],
  ['images not a list', { images: 'nginx' }],
  ['257 images', { images: images(257) }],
  ['an entry without image', { images: [{}] }],
  ['an empty image', { images: [{ image: '' }] }],
  ['a blank image', { images: [{ image: '   ' }] }],
  ['a number for an image', { images: [{ image: 42 }] }],
  ['an entry that is a string', { images: ['nginx'] }],
  ['a bad pullPolicy', { images: images(1), pullPolicy: 'Never' }],
  ['a bad verify', { images: images(1), verify: 'registry' }],
  ['pin as a string', { images: images(1), pin: 'yes' }],
  ['a zero timeout', { images: images(1), timeoutSeconds: 0 }],
  ['a negative timeout', { images: images(1), timeoutSeconds: -5 }],
  ['a timeout over a day', { images: images(1), timeoutSeconds: 86_401 }],
  ['a fractional timeout', { images: images(1), timeoutSeconds: 1.5 }],
  ['a timeout as a string', { images: images(1), timeoutSeconds: '60' }],
  ['a negative backoffLimit', { images: images(1), backoffLimit: -1 }],
  ['a backoffLimit over 100', { images: images(1), backoffLimit: 101 }],
  ['a nodeSelector that is a list', { images: images(1), nodeSelector: ['a'] }],
  ['a nodeSelector value with a space', { images: images(1), nodeSelector: { tier: 'a b' } }],
  ['a nodeSelector value of 64 characters', { images: images(1), nodeSelector: { tier: long } }],
  ['a nodeSelector value that is a number', { images: images(1), nodeSelector: { tier: 5 } }],
  ['a nodeSelector value ending in a dash', { images: images(1), nodeSelector: { tier: 'a-' } }],
  ['imagePullSecrets not a list', { images: images(1), imagePullSecrets: 'regcred' }],
  ['a secret without a name', { images: images(1), imagePullSecrets: [{}] }],
  ['a secret name in capitals', { images: images(1), imagePullSecrets: [{ name: 'RegCred' }] }],
  ['a secret name too long', { images: images(1), imagePullSecrets: [{ name: 'a'.repeat(254) }] }],
  [
    'several problems at once',
    { images: [{ image: '' }, {}], pullPolicy: 'x', backoffLimit: 1000 },
  ],
];

describe('the CRD and validatePrePull agree where a schema can say the rule', () => {
  it.each(AGREE)('%s', async (_what, spec) => {
    const body = prePull(spec);
    const local = validatePrePull(structuredClone(body), NS);
    const { created, fields } = await admit(structuredClone(body));
    const localFields = [...new Set(local.issues.map((i) => normalise(i.field)))].sort();
    expect({ admitted: created !== undefined, fields: [...new Set(fields)] }).toEqual({
      admitted: local.prePull !== undefined,
      fields: localFields,
    });
    if (created !== undefined) {
      // The agent reads the API server's object; prepull sync reads the file. Same spec.
      expect(validatePrePull(created, NS).prePull?.spec).toEqual(local.prePull?.spec);
    }
  });

  it('an image reference over 2048 characters: both refuse it, on the same field', async () => {
    const body = prePull({ images: [{ image: `registry.internal/${'a'.repeat(2040)}` }] });
    const local = validatePrePull(structuredClone(body), NS);
    expect(local.issues.map((i) => i.field)).toEqual(['spec.images[0].image']);
    expect(local.prePull).toBeUndefined();
    expect((await admit(body)).fields).toEqual(['spec.images[0].image']);
  });

  it.each([
    ['a NUL', 'registry.internal/a\u0000b:1'],
    ['a newline', 'registry.internal/a:1\n{"msg":"forged"}'],
    ['an escape sequence', 'registry.internal/a\u001b[31m:1'],
    ['DEL', 'registry.internal/a\u007f:1'],
  ])('an image reference with %s: both refuse it, on the same field', async (_what, image) => {
    const body = prePull({ images: [{ image }] });
    const local = validatePrePull(structuredClone(body), NS);
    expect(local.issues.map((i) => i.field)).toEqual(['spec.images[0].image']);
    expect((await admit(body)).fields).toEqual(['spec.images[0].image']);
  });

  it('a blank image reference, or printable text with white space around it: both agree', async () => {
    for (const [image, admitted] of [
      ['   ', false],
      ['registry.internal:5000/a/b:1.2', true],
      ['  registry.internal/a:1 ', true],
      // A YAML block scalar (`image: |`) ends in a newline: white space around is trimmed.
      ['registry.internal/a:1\n', true],
    ] as const) {
      const body = prePull({ images: [{ image }] });
      expect({
        image,
        local: validatePrePull(structuredClone(body), NS).prePull !== undefined,
      }).toEqual({ image, local: admitted });
      expect({ image, admitted: (await admit(body)).created !== undefined }).toEqual({
        image,
        admitted,
      });
    }
  });
});

describe('where a schema cannot say the rule, they differ as documented in the CRD', () => {
  it.each([
    ['a nodeSelector key with a space', { images: images(1), nodeSelector: { 'bad key': 'x' } }],
    ['a schedule that is not cron', { images: images(1), schedule: 'every day' }],
    ['a time zone the tz database does not know', { images: images(1), timeZone: 'Mars/Olympus' }],
    ['the time zone "Local"', { images: images(1), timeZone: 'Local' }],
    ['a time zone in the wrong case', { images: images(1), timeZone: 'europe/berlin' }],
    ['a ".." time zone part', { images: images(1), timeZone: 'Europe/../UTC' }],
  ])('%s: the API server admits it, validatePrePull refuses it', async (_what, spec) => {
    const body = prePull(spec);
    expect(validatePrePull(structuredClone(body), NS).issues).not.toEqual([]);
    expect((await admit(body)).created).toBeDefined();
  });

  it('unknown fields: the API server prunes them, validatePrePull refuses them', async () => {
    const body = prePull({ images: [{ image: 'nginx', tag: 'x' }], imagePulSecrets: [] });
    expect(validatePrePull(structuredClone(body), NS).issues.map((i) => i.field)).toEqual([
      'spec.imagePulSecrets',
      'spec.images[0].tag',
    ]);
    const { created } = await admit(body);
    expect(created.spec.images).toEqual([{ image: 'nginx' }]);
    expect(created.spec.imagePulSecrets).toBeUndefined();
  });
});

function nodeImageCacheStatus(): Obj {
  return {
    runtime: {
      name: 'containerd',
      version: '1.6.20~ds1',
      endpoint: 'unix:///run/containerd/containerd.sock',
    },
    imageFilesystem: { usedBytes: 1_234_567_890, capacityBytes: 107_374_182_400 },
    summary: { required: 3, present: 1, pulling: 1, missing: 0, stale: 0, failed: 1 },
    images: [
      {
        image: 'registry.internal:5000/shop/web:1.4.2',
        requiredBy: ['shop/shop', 'ops/base'],
        state: 'Present',
        digest: `sha256:${'a'.repeat(64)}`,
        registryDigest: `sha256:${'a'.repeat(64)}`,
        imageId: `sha256:${'b'.repeat(64)}`,
        size: 315_000_000,
        pinned: true,
        pinSource: 'label',
        lastVerified: '2026-05-01T10:00:00.123Z',
        attempts: 0,
        reason: 'Verified',
      },
      {
        image: 'registry.k8s.io/pause:3.9',
        requiredBy: ['runtime/sandbox-image'],
        state: 'Pulling',
        attempts: 0,
        reason: 'Pulling',
      },
      {
        image: 'registry.internal:5000/shop/gone:1',
        requiredBy: ['shop/shop'],
        state: 'Failed',
        attempts: 7,
        reason: 'PullFailed',
        message:
          'pull of registry.internal:5000/shop/gone:1 failed: not found (ERR_IMAGE_NOT_FOUND)',
      },
    ],
    conditions: [
      {
        type: 'Ready',
        status: 'False',
        observedGeneration: 1,
        lastTransitionTime: '2026-05-01T10:00:00Z',
        reason: 'ImagesNotPresent',
        message: '2 of 3 required images are not Present',
      },
    ],
    lastUpdateTime: '2026-05-01T10:00:02.500Z',
  };
}

describe('NodeImageCache', () => {
  it('keeps the status the agent writes through /status, and drops it on create', async () => {
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'NodeImageCache',
      metadata: { name: 'node-a' },
      spec: { nodeName: 'node-a' },
      status: nodeImageCacheStatus(),
    };
    const created: Obj = await custom.createClusterCustomObject({ ...nic, body });
    expect(created.status).toBeUndefined();
    const status = nodeImageCacheStatus();
    const updated: Obj = await custom.replaceClusterCustomObjectStatus({
      ...nic,
      name: 'node-a',
      body: { ...created, status },
    });
    expect(updated.status).toEqual(status);
    const read: Obj = await custom.getClusterCustomObject({ ...nic, name: 'node-a' });
    expect(read.status).toEqual(status);
    expect(read.spec).toEqual({ nodeName: 'node-a' });
  });

  it('keeps the status the agent builds (src/api/nodeimagecache.ts), field for field', async () => {
    const states = ['Present', 'Pulling', 'Missing', 'Stale', 'Failed'] as const;
    const status = agentStatus(
      states.map((state, i) => ({
        image: `registry.internal:5000/app/img${i}:1`,
        requiredBy: i === 0 ? ['runtime/sandbox-image'] : [`${NS}/shop`],
        state,
        reason: state === 'Failed' ? 'PullFailed' : 'Verified',
        ...(state === 'Failed' ? { message: 'x'.repeat(5000), code: 'ERR_IMAGE_NOT_FOUND' } : {}),
        digest: `sha256:${'c'.repeat(64)}`,
        registryDigest: `sha256:${'c'.repeat(64)}`,
        imageId: `sha256:${'d'.repeat(64)}`,
        size: 1_000_000 + i,
        pinned: i % 2 === 0,
        lastVerified: new Date(Date.UTC(2026, 4, 1, 10, i)).toISOString(),
        attempts: i,
        ...(i % 2 === 0 ? { pulledByPrepull: true as const, pinnedByPrepull: true as const } : {}),
        ...(i === 1 ? { cleanup: 'Remove' as const } : {}),
        // Pulling (i 1) with the total known, Present (i 0) with progress that is not written.
        ...(i <= 1 ? { progress: { bytes: 5_000_000_000 + i, totalBytes: 6_000_000_000 } } : {}),
      })),
      {
        name: 'containerd',
        version: '1.6.20~ds1',
        endpoint: 'unix:///run/containerd/containerd.sock',
      },
      { usedBytes: 123, capacityBytes: 456 },
      {
        now: new Date(Date.UTC(2026, 4, 1, 10, 0, 0, 500)).toISOString(),
        released: [
          {
            image: 'registry.internal:5000/app/old:1',
            action: 'Removed',
            time: '2026-05-01T09:59:00.000Z',
          },
          {
            image: 'registry.internal:5000/app/older:1',
            action: 'Kept',
            reason: 'a container uses it',
            time: '2026-05-01T09:58:00.000Z',
          },
          {
            image: 'registry.internal:5000/app/oldest:1',
            action: 'Unpinned',
            time: '2026-05-01T09:57:00.000Z',
          },
        ],
      },
    );
    expect(status.released).toHaveLength(3);
    expect(status.images.map((i) => i.progress)).toEqual([
      undefined,
      { bytes: 5_000_000_001, totalBytes: 6_000_000_000 },
      undefined,
      undefined,
      undefined,
    ]);
    expect(status.images.filter((i) => i.pulledByPrepull === true)).toHaveLength(3);
    const created: Obj = await custom.createClusterCustomObject({
      ...nic,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NodeImageCache',
        metadata: { name: 'node-agent' },
        spec: { nodeName: 'node-agent' },
      },
    });
    const updated: Obj = await custom.replaceClusterCustomObjectStatus({
      ...nic,
      name: 'node-agent',
      body: { ...created, status },
    });
    // Nothing pruned, nothing refused: the schema knows every field the agent writes.
    expect(updated.status).toEqual(JSON.parse(JSON.stringify(status)));
  });

  it('refuses a status with an unknown state, or more than 4096 images', async () => {
    const created: Obj = await custom.createClusterCustomObject({
      ...nic,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NodeImageCache',
        metadata: { name: 'node-b' },
        spec: { nodeName: 'node-b' },
      },
    });
    const bad = nodeImageCacheStatus();
    bad.images[0].state = 'Gone';
    const wrong = await failure(
      custom.replaceClusterCustomObjectStatus({
        ...nic,
        name: 'node-b',
        body: { ...created, status: bad },
      }),
    );
    expect(wrong.code).toBe(422);
    expect(wrong.body.details.causes.map((c: Obj) => c.field)).toEqual(['status.images[0].state']);
    const many = nodeImageCacheStatus();
    many.images = Array.from({ length: 4097 }, (_, i) => ({ image: `img${i}`, state: 'Missing' }));
    const tooMany = await failure(
      custom.replaceClusterCustomObjectStatus({
        ...nic,
        name: 'node-b',
        body: { ...created, status: many },
      }),
    );
    expect(tooMany.body.details.causes.map((c: Obj) => [c.reason, c.field])).toEqual([
      ['FieldValueTooMany', 'status.images'],
    ]);
  });

  it('requires spec.nodeName', async () => {
    const { code, body } = await failure(
      custom.createClusterCustomObject({
        ...nic,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'NodeImageCache',
          metadata: { name: 'x' },
          spec: {},
        },
      }),
    );
    expect(code).toBe(422);
    expect(body.details.causes.map((c: Obj) => c.field)).toEqual(['spec.nodeName']);
  });
});

describe('the agent’s ServiceAccount, with deploy/rbac.yaml', () => {
  let token: string;
  let agent: Agent;

  beforeAll(async () => {
    token = server.serviceAccount('prepull-system', 'prepull-agent').token;
    agent = new Agent({ connect: { ca: server.ca.caPem } });
    server.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'regcred', namespace: NS },
      type: 'Opaque',
      data: {},
    });
    // The controller's copy of a pull secret, in the agents' namespace (ADR 0020).
    server.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'prepull-pull-0123456789abcdef0123', namespace: 'prepull-system' },
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') },
    });
    await custom.createClusterCustomObject({
      ...nic,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NodeImageCache',
        metadata: { name: 'node-c' },
        spec: { nodeName: 'node-c' },
      },
    });
    server.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-c' } });
  });

  afterAll(async () => {
    await agent.close();
  });

  /** The HTTP status of one request as the agent's ServiceAccount. */
  async function as(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<number> {
    const controller = new AbortController();
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      dispatcher: agent,
      signal: controller.signal,
    });
    // A watch streams until its timeout: its status is all this needs.
    controller.abort();
    await response.body?.cancel().catch(() => undefined);
    return response.status;
  }

  const nicPath = `/apis/${GROUP}/${VERSION}/nodeimagecaches`;
  const event = (name: string): Obj => ({
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name, namespace: NS },
    eventTime: '2026-05-01T10:00:00.000000Z',
    reportingController: 'prepull.dev/agent',
    reportingInstance: 'node-c',
    action: 'Pull',
    reason: 'Pulled',
    type: 'Normal',
    note: 'pulled',
    regarding: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PrePull', namespace: NS, name: 'shop' },
  });

  it('may do what the agent does', async () => {
    const allowed: [string, string, unknown?, string?][] = [
      ['GET', `/apis/${GROUP}/${VERSION}/prepulls`],
      ['GET', `/apis/${GROUP}/${VERSION}/prepulls?watch=true&timeoutSeconds=1`],
      ['GET', '/api/v1/nodes?fieldSelector=metadata.name%3Dnode-c'],
      ['GET', '/api/v1/nodes?fieldSelector=metadata.name%3Dnode-c&watch=true&timeoutSeconds=1'],
      ['GET', '/api/v1/namespaces/prepull-system/secrets/prepull-pull-0123456789abcdef0123'],
      ['GET', `${nicPath}/node-c`],
      [
        'POST',
        nicPath,
        {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'NodeImageCache',
          metadata: { name: 'node-d' },
          spec: { nodeName: 'node-d' },
        },
      ],
      ['POST', `/apis/events.k8s.io/v1/namespaces/${NS}/events`, event('shop.1')],
      [
        'PATCH',
        `/apis/events.k8s.io/v1/namespaces/${NS}/events/shop.1`,
        { series: { count: 2, lastObservedTime: '2026-05-01T10:01:00.000000Z' } },
        'application/merge-patch+json',
      ],
    ];
    const answers = [];
    for (const [method, path, body, type] of allowed)
      answers.push([method, path, await as(method, path, body, type)]);
    expect(answers).toEqual(
      allowed.map(([method, path, body]) => [
        method,
        path,
        method === 'POST' && body !== undefined ? 201 : 200,
      ]),
    );
    const live: Obj = await custom.getClusterCustomObject({ ...nic, name: 'node-c' });
    expect(
      await as('PUT', `${nicPath}/node-c/status`, { ...live, status: nodeImageCacheStatus() }),
    ).toBe(200);
  });

  it('may not do anything else: 403', async () => {
    const denied: [string, string, unknown?][] = [
      // Secrets: only get, only in its own namespace (the controller's copies); never one in
      // a PrePull's namespace, never a list or a watch (ADR 0020).
      ['GET', `/api/v1/namespaces/${NS}/secrets/regcred`],
      ['GET', '/api/v1/namespaces/kube-system/secrets/regcred'],
      ['GET', '/api/v1/namespaces/prepull-system/secrets'],
      ['GET', '/api/v1/namespaces/prepull-system/secrets?watch=true&timeoutSeconds=1'],
      ['PUT', '/api/v1/namespaces/prepull-system/secrets/prepull-pull-0123456789abcdef0123', {}],
      ['DELETE', '/api/v1/namespaces/prepull-system/secrets/prepull-pull-0123456789abcdef0123'],
      ['POST', '/api/v1/namespaces/prepull-system/secrets', {}],
      ['GET', `/api/v1/namespaces/${NS}/secrets`],
      ['GET', '/api/v1/secrets'],
      ['GET', `/api/v1/namespaces/${NS}/secrets?watch=true&timeoutSeconds=1`],
      ['DELETE', `/api/v1/namespaces/${NS}/secrets/regcred`],
      ['GET', '/api/v1/nodes/node-c'],
      ['PATCH', '/api/v1/nodes/node-c', {}],
      ['GET', nicPath],
      ['DELETE', `${nicPath}/node-c`],
      ['PUT', `${nicPath}/node-c`, {}],
      ['PATCH', `${nicPath}/node-c/status`, {}],
      ['GET', `/apis/${GROUP}/${VERSION}/namespaces/${NS}/prepulls/x`],
      [
        'POST',
        `/apis/${GROUP}/${VERSION}/namespaces/${NS}/prepulls`,
        prePull({ images: images(1) }),
      ],
      ['PUT', `/apis/${GROUP}/${VERSION}/namespaces/${NS}/prepulls/x/status`, {}],
      ['POST', `/api/v1/namespaces/${NS}/events`, {}],
      ['GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events`],
      ['GET', `/api/v1/namespaces/${NS}/pods`],
      ['POST', `/api/v1/namespaces/${NS}/configmaps`, {}],
    ];
    const answers = [];
    for (const [method, path, body] of denied)
      answers.push([method, path, await as(method, path, body, 'application/merge-patch+json')]);
    expect(answers).toEqual(denied.map(([method, path]) => [method, path, 403]));
  });
});
