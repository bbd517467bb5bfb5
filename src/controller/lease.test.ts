// Leader election against the project's Kubernetes API test server, as the controller's
// ServiceAccount with deploy/controller-rbac.yaml, on manual clocks (one per candidate, skewed:
// each measures the lease on its own): one leader at a time, takeover only after the lease
// duration, hand-over within a retry period on release, and a leader cut off from the API
// stopping within the renew deadline.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import { ManualClock } from '../clock.ts';
import {
  KubeClient,
  type KubeRequester,
  type Method,
  type RequestOptions,
} from '../kube/client.ts';
import { createLogger } from '../telemetry/logger.ts';
import { LEASE_DEFAULTS, type Lease, LeaderElector } from './lease.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SA_USER = 'system:serviceaccount:prepull-system:prepull-controller';
const LEASE_PATH =
  '/apis/coordination.k8s.io/v1/namespaces/prepull-system/leases/prepull-controller';
const START = Date.parse('2026-12-07T19:30:00Z');
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = LEASE_DEFAULTS;
/** Time moves in slices this long; between slices every request in flight is answered. */
const SLICE = 100;

let server: KubeApiServer;
let kube: KubeClient;
let admin: KubeClient;

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'namespace.yaml'));
  server.applyManifests(join(REPO, 'deploy', 'controller-rbac.yaml'));
  kube = KubeClient.load(server.serviceAccount('prepull-system', 'prepull-controller').kubeconfig);
  admin = KubeClient.load(server.adminKubeconfig());
});

afterAll(async () => {
  await server.stop();
});

/** The connection of one candidate: counts what it asks, and can be cut (requests hang). */
class Link implements KubeRequester {
  inFlight = 0;
  down = false;
  /** While set, PUTs wait for it (not counted in flight), so that two can be made to race. */
  gate: Promise<void> | undefined;
  held = 0;
  readonly methods: Method[] = [];

  async request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
    if (method === 'PUT' && this.gate !== undefined) {
      this.held++;
      await this.gate;
      this.held--;
    }
    if (this.down) {
      return new Promise<T>((_, reject) => {
        options.signal?.addEventListener('abort', () => {
          reject(new Error('cut off', { cause: options.signal?.reason }));
        });
      });
    }
    this.methods.push(method);
    this.inFlight++;
    try {
      return await kube.request<T>(method, path, options);
    } finally {
      this.inFlight--;
    }
  }
}

interface Candidate {
  identity: string;
  clock: ManualClock;
  link: Link;
  elector: LeaderElector;
  /** When it started and stopped leading, on the common timeline (its clock minus its skew). */
  started: number[];
  stopped: number[];
  signals: AbortSignal[];
  leaders: string[];
  running: Promise<void>;
}

const candidates: Candidate[] = [];

/** Time since START on the common timeline (each candidate's clock is it plus a skew). */
let elapsed = 0;
const now = (): number => START + elapsed;

function candidate(identity: string, skewMs: number): Candidate {
  const clock = new ManualClock(START + elapsed + skewMs);
  const link = new Link();
  const c: Candidate = {
    identity,
    clock,
    link,
    started: [],
    stopped: [],
    signals: [],
    leaders: [],
    running: Promise.resolve(),
    elector: new LeaderElector(link, {
      namespace: 'prepull-system',
      name: 'prepull-controller',
      identity,
      ...LEASE_DEFAULTS,
      clock,
      log: createLogger('silent'),
      onStartedLeading: (signal) => {
        c.started.push(clock.now() - skewMs);
        c.signals.push(signal);
      },
      onStoppedLeading: () => {
        c.stopped.push(clock.now() - skewMs);
      },
      onNewLeader: (leader) => {
        c.leaders.push(leader);
      },
    }),
  };
  candidates.push(c);
  c.running = c.elector.run();
  return c;
}

/** Waits until no candidate has a request in flight (each is then asleep on its clock). */
async function settle(): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 2000 && quiet < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    quiet = candidates.every((c) => c.link.inFlight === 0) ? quiet + 1 : 0;
  }
  if (quiet < 2) throw new Error('requests still in flight after 2 s');
}

/** Moves every clock by `ms`, slice by slice; never two leaders at once. */
async function step(ms: number, until?: () => boolean): Promise<void> {
  await settle();
  for (let t = 0; t < ms && until?.() !== true; t += SLICE) {
    elapsed += SLICE;
    for (const c of candidates) await c.clock.advance(SLICE);
    await settle();
    expect(candidates.filter((c) => c.elector.isLeader).length).toBeLessThanOrEqual(1);
  }
}

async function lease(): Promise<Lease> {
  return admin.request<Lease>('GET', LEASE_PATH);
}

afterEach(async () => {
  for (const c of candidates.splice(0)) {
    await c.elector.stop();
    await c.running;
  }
  elapsed = 0;
  await admin.request('DELETE', LEASE_PATH).catch(() => undefined);
});

describe('LeaderElector', () => {
  it('lets one of two candidates lead, renewing with one PUT per retry period', async () => {
    const a = candidate('a', 0);
    const b = candidate('b', 3_600_000); // an hour ahead: only its own clock counts
    await step(30_000);
    const [leader, standby] = a.elector.isLeader ? [a, b] : [b, a];
    expect(leader.elector.isLeader).toBe(true);
    expect(standby.elector.isLeader).toBe(false);
    expect(standby.started).toEqual([]);
    expect(leader.started).toHaveLength(1);
    expect(leader.signals[0]!.aborted).toBe(false);
    expect(standby.leaders).toEqual([leader.identity]);
    const { spec } = await lease();
    expect(spec).toMatchObject({
      holderIdentity: leader.identity,
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
    });
    expect(spec?.renewTime).toMatch(MICRO_TIME);
    expect(spec?.acquireTime).toMatch(MICRO_TIME);
    expect(spec?.renewTime).not.toBe(spec?.acquireTime);
    // After taking the lease the leader renews without reading it first.
    const renewals = leader.link.methods.slice(leader.link.methods.lastIndexOf('POST') + 1);
    expect(renewals.filter((m) => m !== 'PUT')).toEqual(
      leader.link.methods.includes('POST') ? [] : ['GET'],
    );
    expect(renewals.filter((m) => m === 'PUT').length).toBeGreaterThanOrEqual(14);
    // The standby only reads.
    expect(standby.link.methods.filter((m) => m === 'PUT')).toEqual([]);
    const denied = server.accounting
      .all()
      .filter((r) => r.user === SA_USER && (r.code === 401 || r.code === 403));
    expect(denied).toEqual([]);
  });

  it('takes over from a leader that stopped renewing after the lease duration, not before', async () => {
    const a = candidate('a', 0);
    await step(SLICE);
    expect(a.elector.isLeader).toBe(true);
    const b = candidate('b', -3_600_000); // an hour behind
    await step(7_000);
    await a.elector.stop(); // no release: the lease stays a's until it expires
    expect(a.stopped).toHaveLength(1);
    expect(a.signals[0]!.aborted).toBe(true);
    const renewed = Date.parse((await lease()).spec!.renewTime!);
    await step(30_000, () => b.elector.isLeader);
    expect(b.elector.isLeader).toBe(true);
    const takeover = b.started[0]! - renewed;
    // b saw the last renewal at its next poll (≤ one retry period later) and waited the lease
    // duration from then, on its own clock.
    expect(takeover).toBeGreaterThanOrEqual(leaseDurationMs);
    expect(takeover).toBeLessThanOrEqual(leaseDurationMs + 2 * retryPeriodMs + SLICE);
    const { spec } = await lease();
    expect(spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(spec?.acquireTime).toBe(spec?.renewTime);
    expect(b.leaders).toEqual(['a', 'b']);
  });

  it('hands over within one retry period when the leader releases the lease', async () => {
    const a = candidate('a', 0);
    await step(SLICE);
    const b = candidate('b', 1234);
    await step(5_000);
    expect(a.elector.isLeader).toBe(true);
    await a.elector.release();
    expect(a.elector.isLeader).toBe(false);
    expect(a.signals[0]!.aborted).toBe(true);
    const released = (await lease()).spec;
    expect(released).toMatchObject({ holderIdentity: '', leaseTransitions: 0 });
    const at = now();
    await step(10_000, () => b.elector.isLeader);
    expect(b.elector.isLeader).toBe(true);
    expect(b.started[0]! - at).toBeLessThanOrEqual(retryPeriodMs + SLICE);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    // A standby that releases writes nothing.
    const puts = b.link.methods.length;
    await candidate('c', 0).elector.release();
    expect((await lease()).spec?.holderIdentity).toBe('b');
    expect(b.link.methods).toHaveLength(puts);
  });

  it('stops leading within the renew deadline when cut off from the API, and the standby takes over', async () => {
    const a = candidate('a', 0);
    await step(SLICE);
    const b = candidate('b', 500);
    await step(6_000);
    expect(a.elector.isLeader).toBe(true);
    a.link.down = true;
    const renewed = Date.parse((await lease()).spec!.renewTime!);
    await step(12_000, () => !a.elector.isLeader);
    expect(a.elector.isLeader).toBe(false);
    expect(a.signals[0]!.aborted).toBe(true);
    // At the deadline: the requests in flight are given up, not waited for.
    expect(a.stopped[0]! - renewed).toBeGreaterThanOrEqual(renewDeadlineMs);
    expect(a.stopped[0]! - renewed).toBeLessThanOrEqual(renewDeadlineMs + SLICE);
    expect(b.elector.isLeader).toBe(false);
    await step(20_000, () => b.elector.isLeader);
    expect(b.started[0]! - renewed).toBeGreaterThanOrEqual(leaseDurationMs);
    expect(b.started[0]!).toBeGreaterThan(a.stopped[0]!);
    // Back on the network, a campaigns again and finds b holding the lease.
    a.link.down = false;
    await step(20_000);
    expect(a.elector.isLeader).toBe(false);
    expect(a.started).toHaveLength(1);
    expect((await lease()).spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('lets one of two standbys racing for a released lease win; the other gets 409', async () => {
    const a = candidate('a', 0);
    await step(SLICE);
    const b = candidate('b', 0);
    const c = candidate('c', 777);
    await step(3_000);
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    b.link.gate = gate;
    c.link.gate = gate;
    await a.elector.release();
    // Both read the released lease and try to take it with the same resourceVersion.
    await step(5_000, () => b.link.held === 1 && c.link.held === 1);
    expect([b.link.held, c.link.held]).toEqual([1, 1]);
    const conflicts = (): number =>
      server.accounting
        .all()
        .filter((r) => r.user === SA_USER && r.verb === 'update' && r.code === 409).length;
    const before = conflicts();
    b.link.gate = undefined;
    c.link.gate = undefined;
    open();
    await step(10_000);
    expect(conflicts()).toBe(before + 1);
    expect([b.elector.isLeader, c.elector.isLeader].filter(Boolean)).toEqual([true]);
    const winner = b.elector.isLeader ? b : c;
    expect((await lease()).spec).toMatchObject({
      holderIdentity: winner.identity,
      leaseTransitions: 1,
    });
  });

  it('creates the Lease once when two candidates start together', async () => {
    const seen = server.accounting.all().length;
    const a = candidate('a', 0);
    const b = candidate('b', 0);
    await step(4_000);
    expect([a.elector.isLeader, b.elector.isLeader].filter(Boolean)).toEqual([true]);
    // Both found none and created it; the second got 409 AlreadyExists and read it instead.
    expect(a.link.methods.slice(0, 2)).toEqual(['GET', 'POST']);
    expect(b.link.methods.slice(0, 2)).toEqual(['GET', 'POST']);
    const created = server.accounting
      .all()
      .slice(seen)
      .filter((r) => r.user === SA_USER && r.verb === 'create' && r.resource.includes('leases'));
    expect(created.map((r) => r.code).sort()).toEqual([201, 409]);
    const loser = a.elector.isLeader ? b : a;
    expect(loser.link.methods[2]).toBe('GET');
    expect(loser.leaders).toEqual([a.elector.isLeader ? 'a' : 'b']);
    expect((await lease()).spec?.leaseTransitions).toBe(0);
  });

  it('refuses timings that could let two replicas lead at once', () => {
    const options = {
      namespace: 'n',
      name: 'l',
      identity: 'i',
      clock: new ManualClock(),
      log: createLogger('silent'),
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    };
    const make = (lease: number, renew: number, retry: number) => () =>
      new LeaderElector(new Link(), {
        ...options,
        leaseDurationMs: lease,
        renewDeadlineMs: renew,
        retryPeriodMs: retry,
      });
    expect(make(15_000, 10_000, 2_000)).not.toThrow();
    expect(make(10_000, 10_000, 2_000)).toThrow(/must be whole seconds and exceed the renew/);
    expect(make(15_500, 10_000, 2_000)).toThrow(/whole seconds/);
    expect(make(15_000, 2_000, 2_000)).toThrow(/must exceed the retry period/);
    expect(make(15_000, 10_000, 0)).toThrow(/must exceed 0/);
  });
});
