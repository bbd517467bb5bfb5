// Conformance of the object semantics with kube-apiserver, through @kubernetes/client-node.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { GROUP, eventually, failure, startFixture, type Fixture } from './fixtures.ts';

const V = 'v1alpha1';
let f: Fixture;
let n = 0;
const unique = (prefix: string): string => `${prefix}-${++n}`;

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-unnecessary-type-assertion -- conformance tests handle untyped JSON and client-node's model classes as plain objects */
type Obj = any;

function widget(name: string, extra: Obj = {}): Obj {
  return {
    apiVersion: `${GROUP}/${V}`,
    kind: 'Widget',
    metadata: { name, ...(extra.metadata ?? {}) },
    spec: { images: [{ image: 'nginx:1' }], ...(extra.spec ?? {}) },
  };
}

const w = (namespace = 'default') => ({ group: GROUP, version: V, namespace, plural: 'widgets' });
const patchAs = (strategy: string) => k8s.setHeaderOptions('Content-Type', strategy);

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.server.stop();
});

describe('create, get, update, delete', () => {
  it('creates with uid, resourceVersion, creationTimestamp and generation 1', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('a1'),
    });
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(created.metadata.resourceVersion)).toBeGreaterThan(0);
    expect(created.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(created.metadata.generation).toBe(1);
    const got: Obj = await f.custom.getNamespacedCustomObject({ ...w(), name: 'a1' });
    expect(got.metadata.uid).toBe(created.metadata.uid);
  });

  it('answers 409 AlreadyExists in kube-apiserver shape', async () => {
    await f.custom.createNamespacedCustomObject({ ...w(), body: widget('dup') });
    const { code, body } = await failure(
      f.custom.createNamespacedCustomObject({ ...w(), body: widget('dup') }),
    );
    expect(code).toBe(409);
    expect(body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `widgets.${GROUP} "dup" already exists`,
      reason: 'AlreadyExists',
      details: { name: 'dup', group: GROUP, kind: 'widgets' },
      code: 409,
    });
  });

  it('answers 404 NotFound for core and custom resources', async () => {
    const core = await failure(f.core.readNamespacedSecret({ name: 'nope', namespace: 'default' }));
    expect(core.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'secrets "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'secrets' },
      code: 404,
    });
    const custom = await failure(f.custom.getNamespacedCustomObject({ ...w(), name: 'nope' }));
    expect(custom.body.message).toBe(`widgets.${GROUP} "nope" not found`);
  });

  it('updates with the current resourceVersion and 409s a stale one', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('u1'),
    });
    const first = { ...created, spec: { ...created.spec, pin: false } };
    const updated: Obj = await f.custom.replaceNamespacedCustomObject({
      ...w(),
      name: 'u1',
      body: first,
    });
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.metadata.resourceVersion),
    );
    expect(updated.metadata.generation).toBe(2);
    const stale = { ...created, spec: { ...created.spec, pin: true } };
    const { code, body } = await failure(
      f.custom.replaceNamespacedCustomObject({ ...w(), name: 'u1', body: stale }),
    );
    expect(code).toBe(409);
    expect(body.reason).toBe('Conflict');
    expect(body.message).toBe(
      `Operation cannot be fulfilled on widgets.${GROUP} "u1": the object has been modified; please apply your changes to the latest version and try again`,
    );
  });

  it('does not write an update that changes nothing', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('noop'),
    });
    const again: Obj = await f.custom.replaceNamespacedCustomObject({
      ...w(),
      name: 'noop',
      body: created,
    });
    expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });

  it('keeps server-owned metadata on update', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('own'),
    });
    const body = {
      ...created,
      metadata: {
        ...created.metadata,
        uid: 'x',
        creationTimestamp: '2000-01-01T00:00:00Z',
        labels: { a: 'b' },
      },
    };
    const updated: Obj = await f.custom.replaceNamespacedCustomObject({
      ...w(),
      name: 'own',
      body,
    });
    expect(updated.metadata.uid).toBe(created.metadata.uid);
    expect(updated.metadata.creationTimestamp).toBe(created.metadata.creationTimestamp);
    expect(updated.metadata.labels).toEqual({ a: 'b' });
    expect(updated.metadata.generation).toBe(1);
  });

  it('deletes and answers 404 afterwards; core deletes answer a Success Status', async () => {
    await f.custom.createNamespacedCustomObject({ ...w(), body: widget('d1') });
    const deleted: Obj = await f.custom.deleteNamespacedCustomObject({ ...w(), name: 'd1' });
    expect(deleted.metadata.name).toBe('d1');
    expect((await failure(f.custom.getNamespacedCustomObject({ ...w(), name: 'd1' }))).code).toBe(
      404,
    );
    await f.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 's-del' }, stringData: { a: 'b' } },
    });
    const status: Obj = await f.core.deleteNamespacedSecret({
      name: 's-del',
      namespace: 'default',
    });
    expect(status.status).toBe('Success');
    expect(status.details.name).toBe('s-del');
  });

  it('generates names from generateName', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: { ...widget(''), metadata: { generateName: 'gen-' } },
    });
    expect(created.metadata.name).toMatch(/^gen-[a-z0-9]{5}$/);
  });

  it('refuses creates into a namespace that does not exist', async () => {
    const { code, body } = await failure(
      f.custom.createNamespacedCustomObject({ ...w('ghost'), body: widget('x') }),
    );
    expect(code).toBe(404);
    expect(body.message).toBe('namespaces "ghost" not found');
  });

  it('serves cluster-scoped custom resources', async () => {
    const body = {
      apiVersion: `${GROUP}/${V}`,
      kind: 'Gadget',
      metadata: { name: 'node-1' },
      spec: { anything: [1, 2] },
    };
    await f.custom.createClusterCustomObject({ group: GROUP, version: V, plural: 'gadgets', body });
    const got: Obj = await f.custom.getClusterCustomObject({
      group: GROUP,
      version: V,
      plural: 'gadgets',
      name: 'node-1',
    });
    expect(got.spec).toEqual({ anything: [1, 2] });
    expect(got.metadata.namespace).toBeUndefined();
  });

  it('serves core/v1 nodes, pods, events; events.k8s.io events; leases', async () => {
    await f.core.createNode({
      body: {
        metadata: { name: 'n-core', labels: { role: 'worker' } },
        status: { nodeInfo: { kubeletVersion: 'v1.34.0' } as Obj },
      },
    });
    const node = await f.core.readNode({ name: 'n-core' });
    expect(node.status?.nodeInfo?.kubeletVersion).toBe('v1.34.0');
    const pod = await f.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'p1' },
        spec: { containers: [{ name: 'c', image: 'x' }] },
        status: { phase: 'Running' },
      },
    });
    expect(pod.status?.phase).toBe('Pending');
    await f.core.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { name: 'e1' },
        involvedObject: { kind: 'Widget', name: 'a1' },
        reason: 'Pulled',
        message: 'ok',
        count: 1,
      },
    });
    const ev = f.kc.makeApiClient(k8s.EventsV1Api);
    await ev.createNamespacedEvent({
      namespace: 'default',
      body: {
        metadata: { name: 'e2' },
        eventTime: new Date() as Obj,
        reportingController: 'prepull.dev/agent',
        reportingInstance: 'n-core',
        action: 'Pull',
        reason: 'Pulled',
        regarding: { kind: 'Widget', name: 'a1' },
        type: 'Normal',
      },
    });
    const patched = await ev.patchNamespacedEvent(
      {
        namespace: 'default',
        name: 'e2',
        body: { series: { count: 2, lastObservedTime: new Date().toISOString() } },
      },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(patched.series?.count).toBe(2);
    const leases = f.kc.makeApiClient(k8s.CoordinationV1Api);
    const lease = await leases.createNamespacedLease({
      namespace: 'kube-node-lease',
      body: {
        metadata: { name: 'n-core' },
        spec: { holderIdentity: 'n-core', leaseDurationSeconds: 40 },
      },
    });
    expect(lease.spec?.holderIdentity).toBe('n-core');
  });
});

describe('patch', () => {
  it('applies merge patches (null removes a field)', async () => {
    await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('pm', { metadata: { labels: { a: '1', b: '2' } } }),
    });
    const patched: Obj = await f.custom.patchNamespacedCustomObject(
      {
        ...w(),
        name: 'pm',
        body: { metadata: { labels: { b: null, c: '3' } }, spec: { pin: false } },
      },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(patched.metadata.labels).toEqual({ a: '1', c: '3' });
    expect(patched.spec.pin).toBe(false);
  });

  it('applies JSON patches, and a failed test op is 422', async () => {
    await f.custom.createNamespacedCustomObject({ ...w(), body: widget('pj') });
    const patched: Obj = await f.custom.patchNamespacedCustomObject(
      {
        ...w(),
        name: 'pj',
        body: [
          { op: 'add', path: '/spec/images/-', value: { image: 'redis:7' } },
          { op: 'replace', path: '/spec/pullPolicy', value: 'Always' },
        ],
      },
      patchAs(k8s.PatchStrategy.JsonPatch),
    );
    expect(patched.spec.images).toEqual([{ image: 'nginx:1' }, { image: 'redis:7' }]);
    expect(patched.spec.pullPolicy).toBe('Always');
    const before: Obj = await f.custom.getNamespacedCustomObject({ ...w(), name: 'pj' });
    const { code, body } = await failure(
      f.custom.patchNamespacedCustomObject(
        {
          ...w(),
          name: 'pj',
          body: [
            { op: 'test', path: '/spec/pin', value: false },
            { op: 'replace', path: '/spec/pin', value: false },
          ],
        },
        patchAs(k8s.PatchStrategy.JsonPatch),
      ),
    );
    // handlers/patch.go: errors.NewGenericServerResponse(422, …) with json-patch's error as the
    // only cause, no group, kind or name.
    expect(code).toBe(422);
    expect(body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server rejected our request due to an error in our request',
      reason: 'Invalid',
      details: { causes: [{ message: 'testing value /spec/pin failed: test failed' }] },
      code: 422,
    });
    const after: Obj = await f.custom.getNamespacedCustomObject({ ...w(), name: 'pj' });
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    // A test that holds lets the rest apply (the controller's test-and-replace of taints).
    const replaced: Obj = await f.custom.patchNamespacedCustomObject(
      {
        ...w(),
        name: 'pj',
        body: [
          { op: 'test', path: '/spec/pin', value: true },
          { op: 'replace', path: '/spec/pin', value: false },
        ],
      },
      patchAs(k8s.PatchStrategy.JsonPatch),
    );
    expect(replaced.spec.pin).toBe(false);
    // A body that is no JSON patch at all is 400, not 422.
    const notAPatch = await failure(
      f.custom.patchNamespacedCustomObject(
        { ...w(), name: 'pj', body: { op: 'test' } },
        patchAs(k8s.PatchStrategy.JsonPatch),
      ),
    );
    expect(notAPatch.code).toBe(400);
  });

  it("JSON patch test-and-replace of a node's spec.taints: applies once, then 422", async () => {
    const pending = { key: 'prepull.dev/images-pending', effect: 'NoSchedule' };
    const other = { key: 'dedicated', value: 'gpu', effect: 'NoExecute' };
    await f.core.createNode({
      body: { metadata: { name: 'n-taint' }, spec: { taints: [pending, other] } },
    });
    const ops = [
      { op: 'test', path: '/spec/taints', value: [pending, other] },
      { op: 'replace', path: '/spec/taints', value: [other] },
    ];
    const node = await f.core.patchNode(
      { name: 'n-taint', body: ops },
      patchAs(k8s.PatchStrategy.JsonPatch),
    );
    expect(node.spec?.taints).toEqual([other]);
    const { code, body } = await failure(
      f.core.patchNode({ name: 'n-taint', body: ops }, patchAs(k8s.PatchStrategy.JsonPatch)),
    );
    expect(code).toBe(422);
    expect(body.details.causes[0].message).toBe('testing value /spec/taints failed: test failed');
  });

  it('applies strategic merge patches to built-in types and refuses them on custom resources (415)', async () => {
    await f.core.createNode({ body: { metadata: { name: 'n-smp', labels: { a: '1' } } } });
    const node = await f.core.patchNode(
      { name: 'n-smp', body: { metadata: { labels: { b: '2' } } } },
      patchAs(k8s.PatchStrategy.StrategicMergePatch),
    );
    expect(node.metadata?.labels).toEqual({ a: '1', b: '2' });
    await f.custom.createNamespacedCustomObject({ ...w(), body: widget('psmp') });
    const { code, body } = await failure(
      f.custom.patchNamespacedCustomObject(
        { ...w(), name: 'psmp', body: { spec: { pin: false } } },
        patchAs(k8s.PatchStrategy.StrategicMergePatch),
      ),
    );
    expect(code).toBe(415);
    expect(body.reason).toBe('UnsupportedMediaType');
  });

  it('server-side apply creates, merges, records managedFields and reports conflicts', async () => {
    const config = widget('ssa', { spec: { pullPolicy: 'Always' } });
    const created: Obj = await f.custom.patchNamespacedCustomObject(
      { ...w(), name: 'ssa', body: config, fieldManager: 'agent' },
      patchAs(k8s.PatchStrategy.ServerSideApply),
    );
    expect(created.spec.pullPolicy).toBe('Always');
    expect(created.metadata.managedFields[0]).toMatchObject({
      manager: 'agent',
      operation: 'Apply',
      fieldsType: 'FieldsV1',
    });
    expect(created.metadata.managedFields[0].fieldsV1['f:spec']['f:pullPolicy']).toEqual({});
    const other = widget('ssa', { spec: { pullPolicy: 'IfNotPresent' } });
    const { code, body } = await failure(
      f.custom.patchNamespacedCustomObject(
        { ...w(), name: 'ssa', body: other, fieldManager: 'other' },
        patchAs(k8s.PatchStrategy.ServerSideApply),
      ),
    );
    expect(code).toBe(409);
    expect(body.message).toBe(
      `Apply failed with 1 conflict: conflict with "agent" using ${GROUP}/${V}: .spec.pullPolicy`,
    );
    const forced: Obj = await f.custom.patchNamespacedCustomObject(
      { ...w(), name: 'ssa', body: other, fieldManager: 'other', force: true },
      patchAs(k8s.PatchStrategy.ServerSideApply),
    );
    expect(forced.spec.pullPolicy).toBe('IfNotPresent');
    const missing = await failure(
      f.custom.patchNamespacedCustomObject(
        { ...w(), name: 'ssa', body: other },
        patchAs(k8s.PatchStrategy.ServerSideApply),
      ),
    );
    expect(missing.code).toBe(422);
  });
});

describe('status subresource and generation', () => {
  it('main endpoint ignores status; /status ignores everything else; generation follows spec only', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: { ...widget('st'), status: { phase: 'Set-on-create' } },
    });
    expect(created.status).toBeUndefined();
    const withStatus: Obj = await f.custom.replaceNamespacedCustomObjectStatus({
      ...w(),
      name: 'st',
      body: { ...created, spec: { images: [{ image: 'changed' }] }, status: { phase: 'Ready' } },
    });
    expect(withStatus.status).toEqual({ phase: 'Ready' });
    expect(withStatus.spec.images).toEqual([{ image: 'nginx:1' }]);
    expect(withStatus.metadata.generation).toBe(1);
    const mainUpdate: Obj = await f.custom.replaceNamespacedCustomObject({
      ...w(),
      name: 'st',
      body: {
        ...withStatus,
        spec: { ...withStatus.spec, pin: false },
        status: { phase: 'Ignored' },
      },
    });
    expect(mainUpdate.status).toEqual({ phase: 'Ready' });
    expect(mainUpdate.metadata.generation).toBe(2);
    const statusPatch: Obj = await f.custom.patchNamespacedCustomObjectStatus(
      { ...w(), name: 'st', body: { status: { observedGeneration: 2 } } },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(statusPatch.status).toEqual({ phase: 'Ready', observedGeneration: 2 });
    expect(statusPatch.metadata.generation).toBe(2);
  });

  it('a merge patch on /status drops spec and metadata changes, bumps resourceVersion, not generation', async () => {
    const created: Obj = await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('stm'),
    });
    const patched: Obj = await f.custom.patchNamespacedCustomObjectStatus(
      {
        ...w(),
        name: 'stm',
        body: {
          metadata: { labels: { sneaky: 'yes' } },
          spec: { pin: false, images: [{ image: 'changed' }] },
          status: { phase: 'Progressing' },
        },
      },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(patched.status).toEqual({ phase: 'Progressing' });
    expect(patched.spec).toEqual(created.spec);
    expect(patched.metadata.labels).toBeUndefined();
    expect(patched.metadata.generation).toBe(1);
    expect(Number(patched.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.metadata.resourceVersion),
    );
    // null removes a status field; the same patch again writes nothing (same resourceVersion).
    const removed: Obj = await f.custom.patchNamespacedCustomObjectStatus(
      { ...w(), name: 'stm', body: { status: { phase: null, observedGeneration: 1 } } },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(removed.status).toEqual({ observedGeneration: 1 });
    const again: Obj = await f.custom.patchNamespacedCustomObjectStatus(
      { ...w(), name: 'stm', body: { status: { phase: null, observedGeneration: 1 } } },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect(again.metadata.resourceVersion).toBe(removed.metadata.resourceVersion);
    // A resourceVersion in the patch is a precondition: a stale one is 409.
    const stale = await failure(
      f.custom.patchNamespacedCustomObjectStatus(
        {
          ...w(),
          name: 'stm',
          body: {
            metadata: { resourceVersion: created.metadata.resourceVersion },
            status: { phase: 'Late' },
          },
        },
        patchAs(k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(stale.code).toBe(409);
    expect(stale.body.reason).toBe('Conflict');
  });
});

describe('leases (coordination.k8s.io/v1), as leader election uses them', () => {
  it('creates, gets and updates with the resourceVersion read; a stale update is 409 Conflict', async () => {
    const leases = f.kc.makeApiClient(k8s.CoordinationV1Api);
    const namespace = 'default';
    const acquire = new Date().toISOString();
    const created = await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: 'prepull-controller' },
        spec: {
          holderIdentity: 'a',
          leaseDurationSeconds: 15,
          acquireTime: acquire as Obj,
          renewTime: acquire as Obj,
          leaseTransitions: 0,
        },
      },
    });
    const again = await failure(
      leases.createNamespacedLease({
        namespace,
        body: { metadata: { name: 'prepull-controller' }, spec: { holderIdentity: 'b' } },
      }),
    );
    expect(again.code).toBe(409);
    expect(again.body.reason).toBe('AlreadyExists');
    // Plain JSON, as a client that read it would hold it (client-node returns model classes).
    const read: Obj = JSON.parse(
      JSON.stringify(await leases.readNamespacedLease({ name: 'prepull-controller', namespace })),
    );
    expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    const renewed = await leases.replaceNamespacedLease({
      name: 'prepull-controller',
      namespace,
      body: { ...read, spec: { ...read.spec, renewTime: new Date().toISOString() as Obj } },
    });
    expect(Number(renewed.metadata?.resourceVersion)).toBeGreaterThan(
      Number(read.metadata?.resourceVersion),
    );
    // A second candidate that read before the renewal loses: 409 with the apiserver's words.
    const { code, body } = await failure(
      leases.replaceNamespacedLease({
        name: 'prepull-controller',
        namespace,
        body: { ...read, spec: { ...read.spec, holderIdentity: 'b', leaseTransitions: 1 } },
      }),
    );
    expect(code).toBe(409);
    expect(body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on leases.coordination.k8s.io "prepull-controller": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'prepull-controller', group: 'coordination.k8s.io', kind: 'leases' },
      code: 409,
    });
    const held = await leases.readNamespacedLease({ name: 'prepull-controller', namespace });
    expect(held.spec?.holderIdentity).toBe('a');
    // Leases have no generation and no status subresource.
    expect(held.metadata?.generation).toBeUndefined();
    const status = await failure(
      f.custom.getNamespacedCustomObjectStatus({
        group: 'coordination.k8s.io',
        version: 'v1',
        namespace,
        plural: 'leases',
        name: 'prepull-controller',
      }),
    );
    expect(status.code).toBe(404);
  });
});

describe('list: selectors and pagination', () => {
  beforeAll(async () => {
    await f.core.createNamespace({ body: { metadata: { name: 'sel' } } });
    const labels = [
      { tier: 'web', env: 'prod' },
      { tier: 'db', env: 'prod' },
      { tier: 'web', env: 'dev' },
      { tier: 'cache' },
      {},
    ];
    for (const [i, l] of labels.entries()) {
      await f.custom.createNamespacedCustomObject({
        ...w('sel'),
        body: widget(`s${i}`, { metadata: { labels: l } }),
      });
    }
  });
  const names = async (labelSelector?: string, fieldSelector?: string): Promise<string[]> => {
    const list: Obj = await f.custom.listNamespacedCustomObject({
      ...w('sel'),
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    });
    return list.items.map((i: Obj) => i.metadata.name);
  };

  it('supports =, ==, !=, in, notin, exists and !key', async () => {
    expect(await names('tier=web')).toEqual(['s0', 's2']);
    expect(await names('tier==web,env=prod')).toEqual(['s0']);
    expect(await names('tier!=web')).toEqual(['s1', 's3', 's4']);
    expect(await names('tier in (db,cache)')).toEqual(['s1', 's3']);
    expect(await names('tier notin (web)')).toEqual(['s1', 's3', 's4']);
    expect(await names('env')).toEqual(['s0', 's1', 's2']);
    expect(await names('!env')).toEqual(['s3', 's4']);
  });

  it('supports metadata.name and metadata.namespace field selectors and rejects others', async () => {
    expect(await names(undefined, 'metadata.name=s3')).toEqual(['s3']);
    expect(await names(undefined, 'metadata.namespace=sel,metadata.name!=s0')).toEqual([
      's1',
      's2',
      's3',
      's4',
    ]);
    const { code, body } = await failure(
      f.custom.listNamespacedCustomObject({ ...w('sel'), fieldSelector: 'spec.pin=true' }),
    );
    expect(code).toBe(400);
    expect(body.reason).toBe('BadRequest');
    const nodes = await f.core.listNode({ fieldSelector: 'metadata.name=n-core' });
    expect(nodes.items.map((i) => i.metadata?.name)).toEqual(['n-core']);
  });

  it('pages with limit and continue at one resourceVersion', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let rv: string | undefined;
    do {
      const page: Obj = await f.custom.listNamespacedCustomObject({
        ...w('sel'),
        limit: 2,
        ...(token ? { _continue: token } : {}),
      });
      seen.push(...page.items.map((i: Obj) => i.metadata.name));
      rv ??= page.metadata.resourceVersion;
      expect(page.metadata.resourceVersion).toBe(rv);
      token = page.metadata.continue;
    } while (token);
    expect(seen).toEqual(['s0', 's1', 's2', 's3', 's4']);
  });

  it('answers 410 Expired for a continue token older than the history window', async () => {
    const page: Obj = await f.custom.listNamespacedCustomObject({ ...w('sel'), limit: 2 });
    await f.core.createNamespacedConfigMap({
      namespace: 'sel',
      body: { metadata: { name: 'bump' } },
    });
    f.server.faults.compact();
    const { code, body } = await failure(
      f.custom.listNamespacedCustomObject({
        ...w('sel'),
        limit: 2,
        _continue: page.metadata.continue,
      }),
    );
    expect(code).toBe(410);
    expect(body.reason).toBe('Expired');
  });
});

describe('finalizers and garbage collection', () => {
  it('a finalizer holds deletion (deletionTimestamp) until it is removed', async () => {
    await f.custom.createNamespacedCustomObject({
      ...w(),
      body: widget('fin', { metadata: { finalizers: ['test.prepull.dev/hold'] } }),
    });
    const deleting: Obj = await f.custom.deleteNamespacedCustomObject({ ...w(), name: 'fin' });
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    const still: Obj = await f.custom.getNamespacedCustomObject({ ...w(), name: 'fin' });
    expect(still.metadata.deletionTimestamp).toBeDefined();
    const refused = await failure(
      f.custom.patchNamespacedCustomObject(
        {
          ...w(),
          name: 'fin',
          body: { metadata: { finalizers: ['test.prepull.dev/hold', 'new'] } },
        },
        patchAs(k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(refused.code).toBe(422);
    await f.custom.patchNamespacedCustomObject(
      { ...w(), name: 'fin', body: { metadata: { finalizers: null } } },
      patchAs(k8s.PatchStrategy.MergePatch),
    );
    expect((await failure(f.custom.getNamespacedCustomObject({ ...w(), name: 'fin' }))).code).toBe(
      404,
    );
  });

  it('deletes dependents when their owner goes, and keeps those with another live owner', async () => {
    const node = await f.core.createNode({ body: { metadata: { name: 'n-gc' } } });
    const other = await f.core.createNode({ body: { metadata: { name: 'n-gc2' } } });
    const ref = (o: k8s.V1Node) => ({
      apiVersion: 'v1',
      kind: 'Node',
      name: o.metadata!.name!,
      uid: o.metadata!.uid!,
    });
    const gadgets = { group: GROUP, version: V, plural: 'gadgets' };
    await f.custom.createClusterCustomObject({
      ...gadgets,
      body: {
        apiVersion: `${GROUP}/${V}`,
        kind: 'Gadget',
        metadata: { name: 'n-gc', ownerReferences: [ref(node)] },
      },
    });
    await f.custom.createClusterCustomObject({
      ...gadgets,
      body: {
        apiVersion: `${GROUP}/${V}`,
        kind: 'Gadget',
        metadata: { name: 'shared', ownerReferences: [ref(node), ref(other)] },
      },
    });
    await f.core.deleteNode({ name: 'n-gc' });
    await eventually(
      async () =>
        (await failure(f.custom.getClusterCustomObject({ ...gadgets, name: 'n-gc' }))).code === 404,
    );
    const shared: Obj = await f.custom.getClusterCustomObject({ ...gadgets, name: 'shared' });
    expect(shared.metadata.ownerReferences.map((r: Obj) => r.name)).toEqual(['n-gc2']);
  });

  it('deleting a namespace removes what it holds, then the namespace', async () => {
    await f.core.createNamespace({ body: { metadata: { name: unique('gone') } } });
    const ns = `gone-${n}`;
    await f.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's' } } });
    const deleting = await f.core.deleteNamespace({ name: ns });
    expect((deleting as Obj).status.phase).toBe('Terminating');
    await eventually(async () => (await failure(f.core.readNamespace({ name: ns }))).code === 404);
  });
});
