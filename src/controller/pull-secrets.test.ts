// The controller's copies of pull secrets (ADR 0020) against the project's API test server with
// deploy/'s RBAC enforced: the controller runs as its ServiceAccount, the agent's PullSecrets as
// the agent's. Nothing is written before leading; a copy with the computed name, the source's
// type and data, the labels and annotations; rotation reaches it at the resync; two PrePulls
// naming one secret share one copy until neither does; a vanished source takes its copy away
// with a Warning Event; a non-pull-secret type is not copied; nothing is written once
// leadership is lost; and the agent reads the copy but not the source.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { JsonObject } from '../../test/kube-api-server/json.ts';
import { API_VERSION } from '../api/prepull.ts';
import { pullSecretCopyName } from '../api/pull-secrets.ts';
import { ManualClock } from '../clock.ts';
import { parseReference } from '../image/reference.ts';
import { KubeClient, isKubeApiError } from '../kube/client.ts';
import { PullSecrets } from '../kube/secrets.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Controller, type ControllerMetrics } from './controller.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AGENTS = 'prepull-system';
const T0 = Date.parse('2026-12-08T01:00:00.000Z');
const RESYNC_MS = 60_000;
const COPY = pullSecretCopyName('app', 'regcred');

let server: KubeApiServer;
let admin: KubeClient;
let asController: KubeClient;
let asAgent: KubeClient;
let controller: Controller;
const clock = new ManualClock(T0);
const writes: string[] = [];

const metrics: ControllerMetrics = {
  statusWrites: () => undefined,
  nodePatches: () => undefined,
  admitted: () => undefined,
  watchRestart: () => undefined,
  prePulls: () => undefined,
  pullSecretCopies: (verb, result) => writes.push(`${verb}:${result}`),
};

function dockerConfig(password: string): string {
  const auth = Buffer.from(`puller:${password}`).toString('base64');
  return Buffer.from(JSON.stringify({ auths: { 'r.test': { auth } } })).toString('base64');
}

function secret(
  name: string,
  password: string,
  type = 'kubernetes.io/dockerconfigjson',
): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { namespace: 'app', name },
    type,
    data: { '.dockerconfigjson': dockerConfig(password) },
  };
}

function prePull(name: string, secrets: string[]): JsonObject {
  return {
    apiVersion: API_VERSION,
    kind: 'PrePull',
    metadata: { namespace: 'app', name },
    spec: {
      images: [{ image: 'r.test/team/web:1' }],
      imagePullSecrets: secrets.map((s) => ({ name: s })),
    },
  };
}

interface SecretView {
  type?: string;
  data?: Record<string, string>;
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
}

function copy(name = COPY): SecretView | undefined {
  return server.get('v1', 'Secret', name, AGENTS) as SecretView | undefined;
}

function copies(): string[] {
  return (server.store.list('/secrets') as { metadata: { namespace?: string; name: string } }[])
    .filter((s) => s.metadata.namespace === AGENTS)
    .map((s) => s.metadata.name)
    .sort();
}

function secretWrites(): number {
  return server.accounting
    .all()
    .filter((r) => r.resource === '/secrets' && ['create', 'update', 'delete'].includes(r.verb))
    .length;
}

/** Moves the controller's clock in small steps, letting real events arrive, until `check`. */
async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return;
    await clock.advance(250);
    await sleep(10);
  }
  throw new Error(`not reached: ${what}; copies: ${copies().join(', ')}`);
}

/** Lets time pass (a few resyncs) without expecting anything. */
async function idle(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 5000) {
    await clock.advance(5000);
    await sleep(15);
  }
}

const image = {
  ref: 'r.test/team/web:1',
  reference: parseReference('r.test/team/web:1'),
  requiredBy: ['app/web'],
  secrets: [{ namespace: 'app', name: 'regcred' }],
} as unknown as Parameters<PullSecrets['forImage']>[0];

beforeAll(async () => {
  server = await KubeApiServer.start();
  for (const file of ['namespace.yaml', 'crds', 'rbac.yaml', 'controller-rbac.yaml'])
    server.applyManifests(join(REPO, 'deploy', file));
  server.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'app' } });
  admin = KubeClient.load(server.adminKubeconfig());
  asController = KubeClient.load(
    server.serviceAccount('prepull-system', 'prepull-controller').kubeconfig,
  );
  asAgent = KubeClient.load(server.serviceAccount('prepull-system', 'prepull-agent').kubeconfig);
  controller = new Controller({
    options: {
      admissionTimeoutMs: 300_000,
      statusIntervalMs: 1000,
      pullSecretNamespace: AGENTS,
      pullSecretResyncMs: RESYNC_MS,
    },
    clock,
    log: createLogger('silent'),
    metrics,
    kube: asController,
    watchBackoff: { initialMs: 50, maxMs: 200 },
  });
});

afterAll(async () => {
  await controller.stop();
  await server.stop();
});

describe('pull secret copies', () => {
  const lease = new AbortController();

  it('writes no copy before it leads', async () => {
    server.apply(secret('regcred', 'first-pw'), prePull('web', ['regcred']));
    await controller.start();
    await idle(2 * RESYNC_MS);
    expect(copies()).toEqual([]);
    expect(secretWrites()).toBe(0);
  });

  it('copies the named secret into the agents’ namespace once leading', async () => {
    controller.lead(lease.signal);
    // The store holds the copy a moment before the controller has the answer and counts it.
    await until('copy made', () => copy() !== undefined && writes.length === 1);
    expect(COPY).toMatch(/^prepull-pull-[0-9a-f]{20}$/);
    const made = copy()!;
    expect(made.type).toBe('kubernetes.io/dockerconfigjson');
    expect(made.data).toEqual({ '.dockerconfigjson': dockerConfig('first-pw') });
    expect(made.metadata.labels).toEqual({
      'app.kubernetes.io/managed-by': 'prepull',
      'prepull.dev/pull-secret-copy': 'true',
    });
    expect(made.metadata.annotations).toEqual({
      'prepull.dev/source': 'app/regcred',
      'prepull.dev/referenced-by': 'app/web',
    });
    expect(copies()).toEqual([COPY]);
    expect(writes).toEqual(['create:ok']);
  });

  it('lets the agent read the copy with the shipped RBAC, and not the source', async () => {
    const secrets = new PullSecrets(asAgent, { clock, from: { copiesIn: AGENTS } });
    const found = await secrets.forImage(image);
    expect(found.map((c) => [c.username, c.password])).toEqual([['puller', 'first-pw']]);
    const denied = await asAgent
      .request('GET', '/api/v1/namespaces/app/secrets/regcred')
      .catch((e: unknown) => e);
    expect(isKubeApiError(denied, 403)).toBe(true);
    const direct = new PullSecrets(asAgent, { clock, from: 'direct' });
    await expect(direct.forImage(image)).rejects.toMatchObject({
      code: 'ERR_PULL_SECRET_UNAVAILABLE',
    });
  });

  it('updates the copy when the source rotates, within a resync', async () => {
    const before = clock.now();
    server.apply(secret('regcred', 'rotated-pw'));
    await until(
      'copy rotated',
      () => copy()?.data?.['.dockerconfigjson'] === dockerConfig('rotated-pw'),
    );
    expect(clock.now() - before).toBeLessThanOrEqual(RESYNC_MS + 1000);
    await until('update counted', () => writes.length === 2);
    expect(writes).toEqual(['create:ok', 'update:ok']);
  });

  it('keeps one copy for two PrePulls until neither names the secret', async () => {
    server.apply(prePull('api', ['regcred']));
    await until(
      'both named',
      () => copy()?.metadata.annotations?.['prepull.dev/referenced-by'] === 'app/api,app/web',
    );
    expect(copies()).toEqual([COPY]);
    await admin.request('DELETE', `/apis/${API_VERSION}/namespaces/app/prepulls/web`);
    await until(
      'one left',
      () => copy()?.metadata.annotations?.['prepull.dev/referenced-by'] === 'app/api',
    );
    expect(copies()).toEqual([COPY]);
    // The last one stops naming it (an edit): the copy goes.
    server.apply(prePull('api', []));
    await until('copy removed', () => copy() === undefined);
    expect(copies()).toEqual([]);
  });

  it('removes a copy whose source vanished, and says so on the PrePull', async () => {
    server.apply(secret('other', 'other-pw'), prePull('db', ['other']));
    const other = pullSecretCopyName('app', 'other');
    await until('other copied', () => copy(other) !== undefined);
    await admin.request('DELETE', '/api/v1/namespaces/app/secrets/other');
    await until('other removed', () => copy(other) === undefined);
    interface Seen {
      type?: string;
      reason?: string;
      note?: string;
      regarding?: { name?: string };
    }
    const events = (): Seen[] => server.store.list('events.k8s.io/events');
    await until('a warning', () => events().some((e) => e.reason === 'PullSecretMissing'));
    const warning = events().find((e) => e.reason === 'PullSecretMissing');
    expect(warning).toMatchObject({ type: 'Warning', regarding: { name: 'db' } });
    expect(warning?.note).toContain('pull secret app/other does not exist');
    // The agent's reason names the copy and what makes it.
    const secrets = new PullSecrets(asAgent, { clock, from: { copiesIn: AGENTS } });
    const error = await secrets
      .forImage({ ...image, secrets: [{ namespace: 'app', name: 'other' }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_PULL_SECRET_UNAVAILABLE' });
    expect((error as Error).message).toBe(
      `copy ${AGENTS}/${other} of pull secret app/other (named in imagePullSecrets of app/web) ` +
        'not there yet: prepull-controller makes it once app/other exists and has a pull-secret ' +
        'type; is prepull-controller running, and does app/other exist?',
    );
  });

  it('does not copy a secret that is not a pull secret', async () => {
    server.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { namespace: 'app', name: 'tls' },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': 'Y3J0', 'tls.key': 'a2V5' },
      },
      prePull('tls', ['tls']),
    );
    interface Seen {
      reason?: string;
      note?: string;
    }
    const events = (): Seen[] => server.store.list('events.k8s.io/events');
    await until('an invalid warning', () => events().some((e) => e.reason === 'PullSecretInvalid'));
    expect(copy(pullSecretCopyName('app', 'tls'))).toBeUndefined();
    const notes = JSON.stringify(events());
    expect(notes).not.toContain('a2V5');
    expect(notes).not.toContain(dockerConfig('rotated-pw'));
  });

  it('never overwrites, and the agent never uses, a copy that names another source', async () => {
    const name = pullSecretCopyName('app', 'taken');
    // Someone else's secret under the copy's name (a collision, or a hand-made one).
    server.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          namespace: AGENTS,
          name,
          labels: {
            'app.kubernetes.io/managed-by': 'prepull',
            'prepull.dev/pull-secret-copy': 'true',
          },
          annotations: { 'prepull.dev/source': 'other/else' },
        },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': dockerConfig('foreign-pw') },
      },
      secret('taken', 'taken-pw'),
      prePull('taken', ['taken']),
    );
    await idle(2 * RESYNC_MS);
    expect(copy(name)?.metadata.annotations?.['prepull.dev/source']).toBe('other/else');
    expect(copy(name)?.data).toEqual({ '.dockerconfigjson': dockerConfig('foreign-pw') });
    const secrets = new PullSecrets(asAgent, { clock, from: { copiesIn: AGENTS } });
    const error = await secrets
      .forImage({ ...image, secrets: [{ namespace: 'app', name: 'taken' }] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_PULL_SECRET_UNAVAILABLE' });
    expect((error as Error).message).toContain(`is not a copy of app/taken`);
    expect((error as Error).message).not.toContain(dockerConfig('foreign-pw'));
  });

  it('writes nothing once leadership is lost', async () => {
    server.apply(secret('late', 'late-pw'), prePull('late', ['late']));
    lease.abort();
    await sleep(20);
    const before = secretWrites();
    await idle(3 * RESYNC_MS);
    expect(secretWrites()).toBe(before);
    expect(copy(pullSecretCopyName('app', 'late'))).toBeUndefined();
    // Every request the controller made was allowed by the shipped RBAC.
    const refused = server.accounting
      .all()
      .filter((r) => r.code === 403 && r.user.endsWith(':prepull-controller'));
    expect(refused).toEqual([]);
  });
});
