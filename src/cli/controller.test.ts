// `prepull controller` against the project's Kubernetes API test server (CRDs and
// deploy/controller-rbac.yaml, the controller's ServiceAccount), on the real clock with short
// lease timings: two replicas, one leading and both ready; SIGTERM releases the Lease and the
// other takes over well before the lease would have expired; --leader-elect=false leads at once
// without a Lease.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import type { Lease } from '../controller/lease.ts';
import { createLogger } from '../telemetry/logger.ts';
import { pollUntil } from '../testing/poll.ts';
import { runController } from './controller.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SA_USER = 'system:serviceaccount:prepull-system:prepull-controller';
/** Whole seconds for the lease; the hand-over on release must come well before it. */
const LEASE_SECONDS = 4;

let server: KubeApiServer;
let kubeconfig: string;

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
  server.applyManifests(join(REPO, 'deploy', 'crds'));
  server.applyManifests(join(REPO, 'deploy', 'controller-rbac.yaml'));
  ({ kubeconfig } = server.serviceAccount('prepull-system', 'prepull-controller'));
});

afterAll(async () => {
  await server.stop();
});

interface Replica {
  signals: EventEmitter;
  exit: Promise<number>;
  lines: Record<string, unknown>[];
  port(): number;
  get(path: string): Promise<{ status: number; text: string }>;
}

const replicas: Replica[] = [];

afterEach(async () => {
  for (const r of replicas.splice(0)) {
    r.signals.emit('SIGTERM');
    await r.exit.catch(() => undefined);
  }
});

function start(identity: string, extra: string[] = []): Replica {
  const signals = new EventEmitter();
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const exit = runController(
    [
      '--kubeconfig',
      kubeconfig,
      '--metrics-address',
      '127.0.0.1:0',
      '--lease-duration',
      String(LEASE_SECONDS),
      '--renew-deadline',
      '2',
      '--retry-period',
      '0.2',
      ...extra,
    ],
    { out: () => undefined, err: () => undefined },
    signals,
    {
      env: { POD_NAME: identity, POD_NAMESPACE: 'prepull-system' },
      log: createLogger('debug', sink),
    },
  );
  const port = (): number => {
    const serving = lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz');
    const address = typeof serving?.address === 'string' ? serving.address : ':0';
    return Number(address.split(':').pop());
  };
  const replica: Replica = {
    signals,
    exit,
    lines,
    port,
    get: async (path) => {
      const response = await fetch(`http://127.0.0.1:${port()}${path}`);
      return { status: response.status, text: await response.text() };
    },
  };
  replicas.push(replica);
  return replica;
}

function lease(): Lease | undefined {
  return server.get('coordination.k8s.io/v1', 'Lease', 'prepull-controller', 'prepull-system') as
    Lease | undefined;
}

function holder(): string | undefined {
  return lease()?.spec?.holderIdentity ?? undefined;
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  await pollUntil(what, check, { timeoutMs: 15_000, intervalMs: 20 });
}

describe('prepull controller', () => {
  it('runs two replicas, one leading and both ready; SIGTERM hands the Lease over', async () => {
    const a = start('controller-a');
    await until('a leads', () => holder() === 'controller-a');
    const b = start('controller-b');
    await until('b serves', () => b.port() > 0);
    // Ready as a standby: readiness is the caches, not the Lease.
    await until('b ready', async () => (await b.get('/readyz')).status === 200);
    expect((await a.get('/readyz')).status).toBe(200);
    expect((await a.get('/healthz')).status).toBe(200);
    expect((await a.get('/metrics')).text).toContain('prepull_controller_leader 1');
    expect((await b.get('/metrics')).text).toContain('prepull_controller_leader 0');

    const handover = Date.now();
    a.signals.emit('SIGTERM');
    expect(await a.exit).toBe(0);
    expect(holder()).toBe(''); // released on the way out
    await until('b leads', () => holder() === 'controller-b');
    expect(Date.now() - handover).toBeLessThan(LEASE_SECONDS * 1000);
    await until('b reports leading', async () =>
      (await b.get('/metrics')).text.includes('prepull_controller_leader 1'),
    );
    expect((await b.get('/metrics')).text).toContain(
      'prepull_controller_leader_transitions_total{transition="started"} 1',
    );
    expect(lease()?.spec).toMatchObject({
      leaseDurationSeconds: LEASE_SECONDS,
      leaseTransitions: 1,
    });
    expect(a.lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['started leading', 'released the lease', 'exiting']),
    );

    b.signals.emit('SIGTERM');
    expect(await b.exit).toBe(0);
    expect(holder()).toBe('');
    const denied = server.accounting
      .all()
      .filter((r) => r.user === SA_USER && (r.code === 401 || r.code === 403));
    expect(denied).toEqual([]);
  }, 30_000);

  it('with --leader-elect=false leads at once and touches no Lease', async () => {
    const leases = (): number =>
      server.accounting.all().filter((r) => r.user === SA_USER && r.resource.includes('leases'))
        .length;
    const leasesBefore = leases();
    const c = start('controller-c', ['--leader-elect=false']);
    await until('c serves', () => c.port() > 0);
    await until('c leads', async () =>
      (await c.get('/metrics')).text.includes('prepull_controller_leader 1'),
    );
    await until('c says it leads alone', () =>
      c.lines.some((l) => l.msg === 'leader election is off: this replica leads; run no other'),
    );
    c.signals.emit('SIGINT');
    expect(await c.exit).toBe(0);
    expect(leases()).toBe(leasesBefore);
  }, 30_000);
});
