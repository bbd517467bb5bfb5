// CRD schema validation (422 with field paths, defaults applied) and RBAC (403 vs granted).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { GROUP, failure, kubeConfigFrom, startFixture, type Fixture } from './fixtures.ts';

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-class-instance-assignment, @typescript-eslint/no-unnecessary-type-assertion -- conformance tests handle untyped JSON and client-node's model classes as plain objects */
type Obj = any;
const V = 'v1alpha1';
let f: Fixture;
const w = (namespace = 'default') => ({ group: GROUP, version: V, namespace, plural: 'widgets' });

beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f.server.stop();
});

describe('validation against openAPIV3Schema', () => {
  it('applies defaults and prunes unknown fields, keeping preserved ones', async () => {
    const body = {
      apiVersion: `${GROUP}/${V}`,
      kind: 'Widget',
      metadata: { name: 'ok' },
      spec: {
        images: [{ image: 'nginx:1', junk: 1 }],
        unknown: 'x',
        schedule: null,
        extra: { free: { form: true } },
      },
      top: 1,
    };
    const created: Obj = await f.custom.createNamespacedCustomObject({ ...w(), body });
    expect(created.spec).toEqual({
      images: [{ image: 'nginx:1' }],
      pullPolicy: 'IfNotPresent',
      pin: true,
      backoffLimit: 6,
      schedule: null,
      extra: { free: { form: true } },
    });
    expect(created.top).toBeUndefined();
  });

  it('rejects a bad object with 422 Invalid naming every bad field', async () => {
    const body = {
      apiVersion: `${GROUP}/${V}`,
      kind: 'Widget',
      metadata: { name: 'bad' },
      spec: {
        images: [{ image: 'UPPER' }, {}, { image: 'a' }, { image: 'b' }],
        pullPolicy: 'Sometimes',
        backoffLimit: 11,
        pin: 'yes',
        notBefore: 'yesterday',
      },
    };
    const { code, body: status } = await failure(
      f.custom.createNamespacedCustomObject({ ...w(), body }),
    );
    expect(code).toBe(422);
    expect(status.reason).toBe('Invalid');
    expect(status.details.name).toBe('bad');
    expect(status.details.group).toBe(GROUP);
    expect(status.details.kind).toBe('Widget');
    const causes = status.details.causes.map((c: Obj) => `${c.reason} ${c.field}`).sort();
    expect(causes).toEqual(
      [
        'FieldValueInvalid spec.backoffLimit',
        'FieldValueInvalid spec.images[0].image',
        'FieldValueNotSupported spec.pullPolicy',
        'FieldValueRequired spec.images[1].image',
        'FieldValueTooMany spec.images',
        'FieldValueTypeInvalid spec.notBefore',
        'FieldValueTypeInvalid spec.pin',
      ].sort(),
    );
    expect(status.message).toMatch(/^Widget\.test\.prepull\.dev "bad" is invalid: \[/);
    expect(status.details.causes).toContainEqual({
      reason: 'FieldValueNotSupported',
      message: 'Unsupported value: "Sometimes": supported values: "IfNotPresent", "Always"',
      field: 'spec.pullPolicy',
    });
    expect(status.details.causes).toContainEqual({
      reason: 'FieldValueInvalid',
      message: 'Invalid value: 11: spec.backoffLimit in body should be less than or equal to 10',
      field: 'spec.backoffLimit',
    });
  });

  it('names a single missing required field without brackets', async () => {
    const body = {
      apiVersion: `${GROUP}/${V}`,
      kind: 'Widget',
      metadata: { name: 'empty' },
      spec: {},
    };
    const { body: status } = await failure(f.custom.createNamespacedCustomObject({ ...w(), body }));
    expect(status.message).toBe(`Widget.${GROUP} "empty" is invalid: spec.images: Required value`);
    expect(status.details.causes).toEqual([
      { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.images' },
    ]);
  });
});

describe('RBAC', () => {
  it('forbids what no binding grants (403 in kube-apiserver words) and allows it once bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rbac-'));
    const sa = f.server.serviceAccount('prepull-system', 'agent', dir);
    const kc = kubeConfigFrom(sa.kubeconfig);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const listAll = () =>
      custom.listClusterCustomObject({ group: GROUP, version: V, plural: 'widgets' });
    const denied = await failure(listAll());
    expect(denied.code).toBe(403);
    expect(denied.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `widgets.${GROUP} is forbidden: User "system:serviceaccount:prepull-system:agent" cannot list resource "widgets" in API group "${GROUP}" at the cluster scope`,
      reason: 'Forbidden',
      details: { group: GROUP, kind: 'widgets' },
      code: 403,
    });
    const secret = await failure(
      core.readNamespacedSecret({ name: 'regcred', namespace: 'default' }),
    );
    expect(secret.body.message).toBe(
      'secrets "regcred" is forbidden: User "system:serviceaccount:prepull-system:agent" cannot get resource "secrets" in API group "" in the namespace "default"',
    );
    const manifests = join(dir, 'rbac.yaml');
    writeFileSync(
      manifests,
      [
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: ClusterRole',
        'metadata: {name: agent}',
        'rules:',
        `- {apiGroups: ["${GROUP}"], resources: [widgets], verbs: [list, watch]}`,
        `- {apiGroups: ["${GROUP}"], resources: [widgets/status], verbs: [patch]}`,
        '---',
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: ClusterRoleBinding',
        'metadata: {name: agent}',
        'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agent}',
        'subjects: [{kind: ServiceAccount, name: agent, namespace: prepull-system}]',
        '---',
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: Role',
        'metadata: {name: pull-secrets, namespace: default}',
        'rules: [{apiGroups: [""], resources: [secrets], resourceNames: [regcred], verbs: [get]}]',
        '---',
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: RoleBinding',
        'metadata: {name: pull-secrets, namespace: default}',
        'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pull-secrets}',
        'subjects: [{kind: Group, name: "system:serviceaccounts:prepull-system"}]',
        '',
      ].join('\n'),
    );
    f.server.applyManifests(manifests);
    await f.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'regcred' } },
    });
    await f.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'other' } },
    });
    expect(((await listAll()) as Obj).kind).toBe('WidgetList');
    expect(
      (await core.readNamespacedSecret({ name: 'regcred', namespace: 'default' })).metadata?.name,
    ).toBe('regcred');
    expect(
      (await failure(core.readNamespacedSecret({ name: 'other', namespace: 'default' }))).code,
    ).toBe(403);
    expect((await failure(core.listNamespacedSecret({ namespace: 'default' }))).code).toBe(403);
    const noUpdate = await failure(
      custom.replaceNamespacedCustomObjectStatus({ ...w(), name: 'ok', body: {} }),
    );
    expect(noUpdate.body.message).toContain('cannot update resource "widgets/status"');
    expect(
      f.server.accounting.count({
        user: 'system:serviceaccount:prepull-system:agent',
        verb: 'get',
        resource: '/secrets',
      }),
    ).toBe(3);
  });

  it('answers 401 for an unknown token', async () => {
    const kc = kubeConfigFrom(f.server.kubeconfig('not-a-token', 'stranger'));
    // client-node drops the body of a 401; the code is what it exposes.
    const { code } = await failure(kc.makeApiClient(k8s.CoreV1Api).listNamespace());
    expect(code).toBe(401);
  });
});
