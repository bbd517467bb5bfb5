// Server-side tables as kube-apiserver serves them to `kubectl get`: content negotiation,
// apiextensions-apiserver's table convertor for CRDs, the built-in printers, includeObject and
// watch events (columnDefinitions on the first event only).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpsRequest } from 'node:https';
import { eventually, startFixture, type Fixture } from './fixtures.ts';
import type { JsonObject } from './json.ts';
import { evaluate, parseJsonPath } from './jsonpath.ts';
import { humanDuration } from './printing.ts';
import { negotiateTable } from './tables.ts';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- tests read untyped JSON */
type Obj = any;

/** What kubectl 1.32's `get` sends. */
const KUBECTL_ACCEPT =
  'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
const NS = 'tables';
const PP = `/apis/prepull.dev/v1alpha1/namespaces/${NS}/prepulls`;

let f: Fixture;

interface Answer {
  code: number;
  body: Obj;
  text: string;
}

function call(
  path: string,
  options: { accept?: string; method?: string; body?: unknown; contentType?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, f.server.url);
    const headers: Record<string, string> = { authorization: `Bearer ${f.server.adminToken}` };
    if (options.accept !== undefined) headers.accept = options.accept;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    const req = httpsRequest(
      url,
      { method: options.method ?? 'GET', headers, ca: f.server.ca.caPem },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          resolve({ code: res.statusCode ?? 0, body: text === '' ? {} : JSON.parse(text), text });
        });
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(JSON.stringify(options.body));
    req.end();
  });
}

function prepull(name: string, spec: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: NS },
    spec: { images: [{ image: 'nginx:1.27' }], ...spec },
  };
}

beforeAll(async () => {
  f = await startFixture();
  f.server.applyManifests('deploy/crds');
  f.server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  f.server.apply(prepull('web', { schedule: '0 3 * * *' }), prepull('bare'));
  const status = await call(`${PP}/web/status`, {
    method: 'PATCH',
    contentType: 'application/merge-patch+json',
    body: {
      status: {
        nodes: { selected: 3, ready: 2, failed: 1 },
        message: '2 of 3 nodes ready',
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'Pulling',
            message: 'pulling',
            lastTransitionTime: '2026-01-01T00:00:00Z',
          },
        ],
      },
    },
  });
  expect(status.code).toBe(200);
});
afterAll(async () => {
  await f.server.stop();
});

describe('negotiation', () => {
  it('serves a Table only for as=Table;g=meta.k8s.io;v=v1|v1beta1, first acceptable range first', () => {
    expect(negotiateTable(KUBECTL_ACCEPT)).toBe('v1');
    expect(negotiateTable('application/json;as=Table;v=v1beta1;g=meta.k8s.io')).toBe('v1beta1');
    expect(negotiateTable('application/json')).toBeUndefined();
    expect(negotiateTable(undefined)).toBeUndefined();
    expect(negotiateTable('application/json, */*')).toBeUndefined();
    // A conversion to something else, or a Table of another group, is skipped.
    expect(negotiateTable('application/json;as=Table;v=v1;g=example.com,application/json')).toBe(
      undefined,
    );
    expect(negotiateTable('application/json;as=Table;v=v2;g=meta.k8s.io')).toBeUndefined();
    expect(negotiateTable('application/json,application/json;as=Table;v=v1;g=meta.k8s.io')).toBe(
      undefined,
    );
  });

  it('answers the object itself when the client does not ask for a Table', async () => {
    const plain = await call(`${PP}/web`);
    expect(plain.body.kind).toBe('PrePull');
    const json = await call(`${PP}/web`, { accept: 'application/json' });
    expect(json.body.kind).toBe('PrePull');
    const list = await call(PP, { accept: 'application/json, */*' });
    expect(list.body.kind).toBe('PrePullList');
  });
});

describe('custom resources: apiextensions-apiserver table convertor', () => {
  it('lists with Name first, then additionalPrinterColumns with their priorities', async () => {
    const { code, body } = await call(PP, { accept: KUBECTL_ACCEPT });
    expect(code).toBe(200);
    expect(body.kind).toBe('Table');
    expect(body.apiVersion).toBe('meta.k8s.io/v1');
    expect(body.metadata.resourceVersion).toMatch(/^\d+$/);
    const columns = body.columnDefinitions.map((c: Obj) => [c.name, c.type, c.priority]);
    expect(columns).toEqual([
      ['Name', 'string', 0],
      ['Nodes', 'integer', 0],
      ['Ready', 'integer', 0],
      ['Failed', 'integer', 0],
      ['Message', 'string', 0],
      ['Age', 'date', 0],
      ['Policy', 'string', 1],
      ['Verify', 'string', 1],
      ['Pin', 'boolean', 1],
      ['Schedule', 'string', 1],
    ]);
    expect(body.columnDefinitions[0]).toEqual({
      name: 'Name',
      type: 'string',
      format: 'name',
      description: expect.stringMatching(/^Name must be unique within a namespace\./),
      priority: 0,
    });
    expect(body.columnDefinitions[1].description).toBe('Nodes the nodeSelector selects.');
    // A column without a description gets the convertor's own.
    expect(body.columnDefinitions[5].description).toBe(
      'Custom resource definition column (in JSONPath format): .metadata.creationTimestamp',
    );
    const rows = new Map(body.rows.map((r: Obj) => [r.cells[0], r]));
    const web: Obj = rows.get('web');
    expect(web.cells).toEqual([
      'web',
      3,
      2,
      1,
      '2 of 3 nodes ready',
      expect.stringMatching(/^\d+s$/),
      'IfNotPresent',
      'Registry',
      true,
      '0 3 * * *',
    ]);
    expect(web.object).toEqual({
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: expect.objectContaining({ name: 'web', namespace: NS }),
    });
    // No status yet: the convertor leaves nil cells (kubectl prints them empty).
    const bare: Obj = rows.get('bare');
    expect(bare.cells.slice(1, 5)).toEqual([null, null, null, null]);
    expect(bare.cells[9]).toBeNull();
  });

  it('answers a get with a one-row Table, in v1beta1 when asked', async () => {
    const { body } = await call(`${PP}/web`, {
      accept: 'application/json;as=Table;v=v1beta1;g=meta.k8s.io',
    });
    expect(body.apiVersion).toBe('meta.k8s.io/v1beta1');
    expect(body.rows).toHaveLength(1);
    expect(body.rows[0].object.apiVersion).toBe('meta.k8s.io/v1beta1');
    expect(body.metadata.resourceVersion).toBe(body.rows[0].object.metadata.resourceVersion);
  });

  it('includes the whole object, nothing, or refuses an unknown includeObject (400)', async () => {
    const whole = await call(`${PP}/web?includeObject=Object`, { accept: KUBECTL_ACCEPT });
    expect(whole.body.rows[0].object).toMatchObject({
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'PrePull',
      status: { message: '2 of 3 nodes ready' },
    });
    const none = await call(`${PP}?includeObject=None`, { accept: KUBECTL_ACCEPT });
    expect(none.body.rows.every((r: Obj) => !('object' in r))).toBe(true);
    const bad = await call(`${PP}?includeObject=Everything`, { accept: KUBECTL_ACCEPT });
    expect(bad.code).toBe(400);
    expect(bad.body).toMatchObject({
      kind: 'Status',
      reason: 'BadRequest',
      message:
        'Unable to convert to Table as requested: includeObject: Unsupported value: "Everything": supported values: "Metadata", "None", "Object"',
    });
  });

  it('gives a CRD without printer columns Name and Age, and pages with continue', async () => {
    for (const name of ['t1', 't2']) {
      await f.custom.createNamespacedCustomObject({
        group: 'test.prepull.dev',
        version: 'v1alpha1',
        namespace: 'default',
        plural: 'widgets',
        body: {
          apiVersion: 'test.prepull.dev/v1alpha1',
          kind: 'Widget',
          metadata: { name },
          spec: { images: [{ image: 'x' }] },
        },
      });
    }
    const { body } = await call(
      '/apis/test.prepull.dev/v1alpha1/namespaces/default/widgets?limit=1',
      { accept: KUBECTL_ACCEPT },
    );
    expect(body.columnDefinitions.map((c: Obj) => [c.name, c.type])).toEqual([
      ['Name', 'string'],
      ['Age', 'date'],
    ]);
    expect(body.columnDefinitions[1].description).toMatch(/^CreationTimestamp is a timestamp/);
    expect(body.rows).toHaveLength(1);
    expect(body.rows[0].cells).toEqual(['t1', expect.stringMatching(/^\d+s$/)]);
    expect(body.metadata.continue).toEqual(expect.any(String));
    expect(body.metadata.remainingItemCount).toBe(1);
  });

  it('evaluates JSONPath filters, as NodeImageCache Ready column uses', async () => {
    f.server.apply({
      apiVersion: 'prepull.dev/v1alpha1',
      kind: 'NodeImageCache',
      metadata: { name: 'node-a' },
      spec: { nodeName: 'node-a' },
    });
    const path = '/apis/prepull.dev/v1alpha1/nodeimagecaches/node-a/status';
    const since = { lastTransitionTime: '2026-01-01T00:00:00Z' };
    const patched = await call(path, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          summary: { required: 2, present: 2, failed: 0 },
          conditions: [
            { type: 'Progressing', status: 'False', ...since, reason: 'Done', message: 'done' },
            { type: 'Ready', status: 'True', ...since, reason: 'AllPresent', message: 'ok' },
          ],
        },
      },
    });
    expect([patched.code, patched.body.message]).toEqual([200, undefined]);
    const { body } = await call('/apis/prepull.dev/v1alpha1/nodeimagecaches/node-a', {
      accept: KUBECTL_ACCEPT,
    });
    const names = body.columnDefinitions.map((c: Obj) => c.name);
    expect(body.rows[0].cells[names.indexOf('Ready')]).toBe('True');
    expect(body.rows[0].cells[names.indexOf('Required')]).toBe(2);
  });
});

describe('built-in kinds: kube-apiserver printers', () => {
  it('prints nodes as NAME STATUS ROLES AGE VERSION (+ wide columns)', async () => {
    f.server.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: 'worker-1',
        labels: { 'node-role.kubernetes.io/worker': '', 'kubernetes.io/role': 'gpu' },
      },
      spec: { unschedulable: true },
      status: {
        conditions: [{ type: 'Ready', status: 'False' }],
        addresses: [{ type: 'InternalIP', address: '10.0.0.7' }],
        nodeInfo: { kubeletVersion: 'v1.32.4', osImage: 'Debian GNU/Linux 12' },
      },
    });
    const { body } = await call('/api/v1/nodes/worker-1', { accept: KUBECTL_ACCEPT });
    expect(body.columnDefinitions.map((c: Obj) => [c.name, c.priority])).toEqual([
      ['Name', 0],
      ['Status', 0],
      ['Roles', 0],
      ['Age', 0],
      ['Version', 0],
      ['Internal-IP', 1],
      ['External-IP', 1],
      ['OS-Image', 1],
      ['Kernel-Version', 1],
      ['Container-Runtime', 1],
    ]);
    expect(body.rows[0].cells).toEqual([
      'worker-1',
      'NotReady,SchedulingDisabled',
      'gpu,worker',
      expect.stringMatching(/^\d+s$/),
      'v1.32.4',
      '10.0.0.7',
      '<none>',
      'Debian GNU/Linux 12',
      '<unknown>',
      '<unknown>',
    ]);
  });

  it('prints leases (Holder), namespaces (Status), CRDs (Created At, RFC 3339)', async () => {
    f.server.apply({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'prepull-controller', namespace: NS },
      spec: { holderIdentity: 'controller-0', leaseDurationSeconds: 15 },
    });
    const lease = await call(`/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, {
      accept: KUBECTL_ACCEPT,
    });
    expect(lease.body.columnDefinitions.map((c: Obj) => c.name)).toEqual(['Name', 'Holder', 'Age']);
    expect(lease.body.rows[0].cells.slice(0, 2)).toEqual(['prepull-controller', 'controller-0']);
    const ns = await call(`/api/v1/namespaces/${NS}`, { accept: KUBECTL_ACCEPT });
    expect(ns.body.rows[0].cells.slice(0, 2)).toEqual([NS, 'Active']);
    const crds = await call(
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/prepulls.prepull.dev',
      { accept: KUBECTL_ACCEPT },
    );
    expect(crds.body.columnDefinitions.map((c: Obj) => [c.name, c.type])).toEqual([
      ['Name', 'string'],
      ['Created At', 'date'],
    ]);
    expect(crds.body.rows[0].cells[1]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('prints pods with READY, STATUS and RESTARTS from container statuses', async () => {
    f.server.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: NS },
      spec: { nodeName: 'worker-1', containers: [{ name: 'a', image: 'x' }] },
    });
    await call(`/api/v1/namespaces/${NS}/pods/p/status`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          phase: 'Pending',
          containerStatuses: [
            {
              name: 'a',
              ready: false,
              restartCount: 0,
              image: 'x',
              imageID: '',
              state: { waiting: { reason: 'ErrImageNeverPull' } },
            },
          ],
        },
      },
    });
    const { body } = await call(`/api/v1/namespaces/${NS}/pods/p`, { accept: KUBECTL_ACCEPT });
    expect(body.rows[0].cells).toEqual([
      'p',
      '0/1',
      'ErrImageNeverPull',
      '0',
      expect.stringMatching(/^\d+s$/),
      '<none>',
      'worker-1',
      '<none>',
      '<none>',
    ]);
  });
});

describe('watch', () => {
  it('sends Table events, with columnDefinitions on the first event only', async () => {
    const list = await call(PP, { accept: KUBECTL_ACCEPT });
    const rv = String(list.body.metadata.resourceVersion);
    const url = new URL(`${PP}?watch=true&resourceVersion=${rv}&timeoutSeconds=5`, f.server.url);
    const lines: Obj[] = [];
    const req = httpsRequest(url, {
      headers: { authorization: `Bearer ${f.server.adminToken}`, accept: KUBECTL_ACCEPT },
      ca: f.server.ca.caPem,
    });
    let buffered = '';
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buffered.slice(0, nl)));
          buffered = buffered.slice(nl + 1);
        }
      });
    });
    req.end();
    await eventually(() => f.server.watches.openCount > 0);
    for (const message of ['first', 'second']) {
      await call(`${PP}/web/status`, {
        method: 'PATCH',
        contentType: 'application/merge-patch+json',
        body: { status: { message } },
      });
    }
    await eventually(() => lines.length >= 2);
    req.destroy();
    expect(lines.map((l) => l.type)).toEqual(['MODIFIED', 'MODIFIED']);
    expect(lines[0].object.kind).toBe('Table');
    expect(lines[0].object.columnDefinitions).toHaveLength(10);
    expect(lines[1].object.columnDefinitions).toBeNull();
    expect(lines.map((l) => l.object.rows[0].cells[4])).toEqual(['first', 'second']);
    expect(lines[1].object.rows[0].object.kind).toBe('PartialObjectMetadata');
  });
});

describe('helpers', () => {
  it("formats ages as apimachinery's HumanDuration", () => {
    const s = 1000;
    const cases: [number, string][] = [
      [-5 * s, '<invalid>'],
      [-1 * s, '0s'],
      [0, '0s'],
      [119 * s, '119s'],
      [150 * s, '2m30s'],
      [600 * s, '10m'],
      [179 * 60 * s, '179m'],
      [3 * 3600 * s, '3h'],
      [(7 * 60 + 59) * 60 * s, '7h59m'],
      [47 * 3600 * s, '47h'],
      [(2 * 24 + 5) * 3600 * s, '2d5h'],
      [30 * 24 * 3600 * s, '30d'],
      [(3 * 365 + 10) * 24 * 3600 * s, '3y10d'],
      [9 * 365 * 24 * 3600 * s, '9y'],
    ];
    for (const [ms, text] of cases) expect([ms, humanDuration(ms)]).toEqual([ms, text]);
  });

  it('evaluates the JSONPath forms printer columns use', () => {
    const doc = {
      status: {
        conditions: [
          { type: 'A', status: 'False' },
          { type: 'Ready', status: 'True' },
        ],
        nodes: { ready: 0 },
      },
      metadata: { labels: { 'app.kubernetes.io/name': 'x' } },
    };
    const at = (p: string) => evaluate(parseJsonPath(p), doc);
    expect(at('.status.nodes.ready')).toEqual([0]);
    expect(at('.status.missing.deeper')).toEqual([]);
    expect(at('.status.conditions[?(@.type=="Ready")].status')).toEqual(['True']);
    expect(at('.status.conditions[*].type')).toEqual(['A', 'Ready']);
    expect(at('.status.conditions[-1].type')).toEqual(['Ready']);
    expect(at("{.metadata.labels['app.kubernetes.io/name']}")).toEqual(['x']);
    expect(at('.metadata.labels.app\\.kubernetes\\.io/name')).toEqual(['x']);
  });
});
