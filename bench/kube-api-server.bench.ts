// Watch fan-out at scale (issue 3): the Kubernetes API test server in a child process, N lean
// watch clients (bare TLS, no JSON parsing) in worker threads on one custom resource type from
// the same resourceVersion, and writes (creates and updates) at a fixed rate from this thread;
// every watcher must see every write's event.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parse as parseYaml } from 'yaml';
import { WIDGET_CRD } from '../test/kube-api-server/fixtures.ts';
import type { FromWorker, ToWorker, WatchersSetup, Written } from './kube-api-server-watchers.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';

const LAUNCHER = fileURLToPath(new URL('../test/kube-api-server/launcher.ts', import.meta.url));
const GROUP = 'test.prepull.dev';
const NAMESPACE = 'default';
const PATH = `/apis/${GROUP}/v1alpha1/namespaces/${NAMESPACE}/widgets`;
/** Watchers connecting at once per worker (TLS handshakes in flight). */
const CONNECT_CONCURRENCY = 25;
/** Worker threads the watchers are spread over. */
const WORKERS = 2;
/** Connections the writer keeps open (keep-alive) for its requests. */
const WRITE_SOCKETS = 16;
/** The pacing timer's period; each tick issues every write that is due by then. */
const TICK_MS = 5;
/** Latency histogram resolution and range. */
const BUCKET_MS = 0.1;
const BUCKETS = 200_000;
/** Issue 3's goal: 200 writes/s with 1,000 watchers. */
const GOAL_WRITES_PER_SECOND = 200;
/** Offered 20 % above the goal: an achieved rate at the offered rate could not show more. */
const OFFERED_WRITES_PER_SECOND = 240;
/** The histogram starts here, so events that arrive before their write's response fit. */
const LOWEST_MS = -1000;

interface Endpoint {
  host: string;
  port: number;
  ca: string;
  token: string;
}

type Json = Record<string, unknown>;

/** Starts the launcher and resolves with the server's endpoint once it prints its kubeconfig. */
async function startServer(
  dir: string,
  log: (l: string) => void,
): Promise<{ child: ChildProcess; endpoint: Endpoint }> {
  const out = join(dir, 'out');
  writeFileSync(join(dir, 'widget-crd.yaml'), JSON.stringify(WIDGET_CRD));
  const child = spawn(
    process.execPath,
    [
      ...(process.env.KAS_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/scratch/prof'] : []),
      LAUNCHER,
      '--port',
      '0',
      '--crds',
      join(dir, 'widget-crd.yaml'),
      '--out',
      out,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let stdout = '';
  const kubeconfig = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`kube-api-server did not start in 30 s: ${stdout}${stderr}`));
    }, 30_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /admin kubeconfig: (.+)\n/.exec(stdout);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`kube-api-server exited (${code ?? signal}): ${stderr}`));
    });
  });
  log(stdout.trim().split('\n')[0]!);
  const kc = parseYaml(readFileSync(kubeconfig, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
    users: { user: { token: string } }[];
  };
  const cluster = kc.clusters[0]!.cluster;
  const url = new URL(cluster.server);
  return {
    child,
    endpoint: {
      host: url.hostname,
      port: Number(url.port),
      ca: Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8'),
      token: kc.users[0]!.user.token,
    },
  };
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** One JSON request through `agent`; resolves with the status and parsed body. */
function call(
  e: Endpoint,
  agent: Agent,
  method: string,
  path: string,
  body?: Json,
): Promise<{ code: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: e.host,
        port: e.port,
        method,
        path,
        agent,
        headers: {
          authorization: `Bearer ${e.token}`,
          accept: 'application/json',
          ...(text === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ code: res.statusCode ?? 0, body: JSON.parse(raw) as Json });
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/**
 * The noise group of the write-to-watch latencies. Open-loop writes at ~0.9 of the server's one
 * core: they include the queue of writes waiting for the server, which is a matter of chance from
 * run to run, unlike the delivery latency; their run-to-run noise is measured apart.
 */
const QUEUED = 'ms, with the queue of writes';

/** CPU seconds (user + system) of a process, from /proc/PID/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** VmRSS and VmHWM of a process in MiB, from /proc/PID/status. */
function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1]);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/** The watchers of one worker thread, driven by messages (kube-api-server-watchers.ts). */
class WatcherGroup {
  readonly worker: Worker;
  #waiting: ((m: FromWorker) => void) | undefined;
  #failure: Error | undefined;

  constructor(setup: WatchersSetup) {
    this.worker = new Worker(new URL('./kube-api-server-watchers.ts', import.meta.url), {
      workerData: setup,
    });
    this.worker.on('message', (m: FromWorker) => {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(m);
    });
    this.worker.on('error', (error: Error) => {
      this.#failure = error;
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.({ kind: 'failed', error: String(error) });
    });
  }

  /** The worker's next message, after sending `message` (if any). */
  next(message?: ToWorker): Promise<FromWorker> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiting = (m) => {
        if (m.kind === 'failed') reject(new Error(`watcher worker: ${m.error}`));
        else resolve(m);
      };
      if (message !== undefined) this.worker.postMessage(message);
    });
  }

  async close(): Promise<void> {
    this.worker.postMessage({ kind: 'close' } satisfies ToWorker);
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await once(this.worker, 'exit');
    clearTimeout(timer);
  }
}

function widget(name: string, n: number): Json {
  return {
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'Widget',
    metadata: { name, namespace: NAMESPACE, labels: { bench: 'kube-api-server' } },
    spec: { images: [{ image: `img:${n}` }] },
  };
}

function percentile(hist: Uint32Array, total: number, p: number): number {
  const target = Math.ceil(total * p);
  let sum = 0;
  for (let i = 0; i < hist.length; i++) {
    sum += hist[i]!;
    if (sum >= target) return LOWEST_MS + (i + 0.5) * BUCKET_MS;
  }
  return LOWEST_MS + hist.length * BUCKET_MS;
}

const benchmark: Benchmark = {
  name: 'kube-api-server',
  area: 'Kubernetes API test server',
  method:
    'Starts the test server as a child process (`node test/kube-api-server/launcher.ts`) with ' +
    "the fixtures' namespaced Widget CRD, so the server has an event loop of its own. 1,000 " +
    'watches (--quick: 100) on widgets in one namespace, all from the same resourceVersion ' +
    '(that of an initial list), are opened by lean clients in 2 worker threads of the ' +
    'benchmark process: a bare TLS connection each (the kubeconfig CA and admin token), 25 ' +
    'handshakes at a time per thread, one HTTP/1.1 watch request written by hand, and the raw ' +
    "stream scanned for each event's type and object resourceVersion — no HTTP client and no " +
    'JSON parsing, so the clients leave the CPU to the server (on 2 CPUs, server and clients ' +
    'share the machine). Once all are connected the main thread writes at 240 objects/s for ' +
    '20 s (--quick: 50/s for 5 s) — 20 % above the goal of 200/s, so that the rate achieved ' +
    'shows whether the server keeps up with 200/s and has room to spare, rather than echoing ' +
    'the rate offered (writes are sent open-loop: a server that falls behind answers later, ' +
    'and the achieved rate falls below the offered one): a 5 ms timer issues every write due by then, alternating a ' +
    'create of a new Widget and a PUT update (changed spec, resourceVersion from its last ' +
    'response) of an earlier one, over 16 keep-alive connections. Timed: writes/s = successful ' +
    'writes ÷ time from the first write sent to the last response; delivery = distinct written ' +
    'resourceVersions each watcher saw (ADDED/MODIFIED), summed over watchers, ÷ (successful ' +
    'writes × watchers), counted after waiting up to 10 s for the streams to drain; latency = ' +
    "event arrival at a watcher − the write's request being sent (or its response read), over " +
    'every (write, watcher) pair, in 0.1 ms buckets. Server CPU (user + system) and RSS come ' +
    'from /proc of the child over the write phase. One run; no baseline: it is a capacity test.',
  async run(ctx) {
    const watchers = ctx.quick ? 100 : 1000;
    const rate = ctx.quick ? 50 : OFFERED_WRITES_PER_SECOND;
    const seconds = ctx.quick ? 5 : 20;
    const dir = mkdtempSync(join(tmpdir(), 'bench-kube-api-server-'));
    let writeAgent: Agent | undefined;
    let child: ChildProcess | undefined;
    const groups: WatcherGroup[] = [];
    try {
      const started = await startServer(dir, (l) => {
        ctx.log(l);
      });
      child = started.child;
      const e = started.endpoint;
      writeAgent = new Agent({ ca: e.ca, keepAlive: true, maxSockets: WRITE_SOCKETS });
      const pid = child.pid!;
      const list = await call(e, writeAgent, 'GET', PATH);
      if (list.code !== 200) throw new Error(`list widgets answered ${list.code}`);
      const fromRv = Number((list.body.metadata as Json).resourceVersion);
      const total = rate * seconds;

      const connectStart = performance.now();
      for (let i = 0; i < WORKERS; i++) {
        const count = Math.floor(watchers / WORKERS) + (i < watchers % WORKERS ? 1 : 0);
        groups.push(
          new WatcherGroup({
            host: e.host,
            port: e.port,
            ca: e.ca,
            token: e.token,
            path: `${PATH}?watch=1&resourceVersion=${fromRv}&timeoutSeconds=3600`,
            count,
            base: fromRv,
            slots: total + 100,
            connectConcurrency: CONNECT_CONCURRENCY,
          }),
        );
      }
      let connectedCount = 0;
      for (const m of await Promise.all(groups.map((g) => g.next()))) {
        if (m.kind === 'connected') connectedCount += m.count;
      }
      ctx.log(
        `${connectedCount} watchers connected in ${((performance.now() - connectStart) / 1000).toFixed(1)} s`,
      );

      const epoch = (): number => performance.timeOrigin + performance.now();
      const cpu0 = cpuSeconds(pid);
      const clientCpu0 = process.cpuUsage();
      const wall0 = performance.now();
      let issued = 0;
      let succeeded = 0;
      let failed = 0;
      let creates = 0;
      let lastResponse = wall0;
      const written: Written[] = [];
      const idle: { name: string; body: Json }[] = [];
      const inFlight = new Set<Promise<void>>();
      const write = (k: number): void => {
        const updateOf = k % 2 === 1 ? idle.shift() : undefined;
        let p: Promise<{ code: number; body: Json }>;
        let name: string;
        if (updateOf === undefined) {
          name = `w-${creates++}`;
          p = call(e, writeAgent!, 'POST', PATH, widget(name, k));
        } else {
          name = updateOf.name;
          const body = { ...updateOf.body, spec: { images: [{ image: `img:${k}` }] } };
          p = call(e, writeAgent!, 'PUT', `${PATH}/${name}`, body);
        }
        const sent = epoch();
        const done = p
          .then(({ code, body }) => {
            lastResponse = performance.now();
            if (code !== 200 && code !== 201) {
              failed++;
              ctx.log(`write answered ${code}: ${JSON.stringify(body).slice(0, 200)}`);
              return;
            }
            succeeded++;
            const rv = Number((body.metadata as Json).resourceVersion);
            written.push({ rv, sent, answered: epoch() });
            idle.push({ name, body });
          })
          .catch((error: unknown) => {
            failed++;
            ctx.log(`write failed: ${String(error)}`);
          })
          .finally(() => {
            inFlight.delete(done);
          });
        inFlight.add(done);
      };
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          const due = Math.min(total, Math.floor(((performance.now() - wall0) / 1000) * rate) + 1);
          while (issued < due) write(issued++);
          if (issued >= total) {
            clearInterval(timer);
            resolve();
          }
        };
        const timer = setInterval(tick, TICK_MS);
        tick();
      });
      while (inFlight.size > 0) await Promise.all([...inFlight]);
      const writeSeconds = (lastResponse - wall0) / 1000;
      const serverCpuSeconds = cpuSeconds(pid) - cpu0;
      const cpu = serverCpuSeconds / writeSeconds;
      const clientUsage = process.cpuUsage(clientCpu0);
      const clientCpuSeconds = (clientUsage.user + clientUsage.system) / 1e6;
      const mem = memoryMiB(pid);

      const expected = written.length * connectedCount;
      const rvs = written.map((t) => t.rv);
      const count = async (): Promise<{ delivered: number; ended: number }> => {
        let delivered = 0;
        let ended = 0;
        for (const m of await Promise.all(groups.map((g) => g.next({ kind: 'count', rvs })))) {
          if (m.kind !== 'count') throw new Error(`unexpected ${m.kind} from a watcher worker`);
          delivered += m.delivered;
          ended += m.ended;
        }
        return { delivered, ended };
      };
      const drainUntil = performance.now() + 10_000;
      let state = await count();
      while (state.delivered < expected && performance.now() < drainUntil) {
        await new Promise((r) => setTimeout(r, 200));
        state = await count();
      }
      const fromSent = new Uint32Array(BUCKETS);
      const fromAnswer = new Uint32Array(BUCKETS);
      let samples = 0;
      let got = 0;
      const collect: ToWorker = {
        kind: 'collect',
        written,
        lowestMs: LOWEST_MS,
        bucketMs: BUCKET_MS,
        buckets: BUCKETS,
      };
      for (const m of await Promise.all(groups.map((g) => g.next(collect)))) {
        if (m.kind !== 'collected') throw new Error(`unexpected ${m.kind} from a watcher worker`);
        got += m.delivered;
        samples += m.samples;
        for (let i = 0; i < BUCKETS; i++) {
          fromSent[i]! += m.fromSent[i]!;
          fromAnswer[i]! += m.fromAnswer[i]!;
        }
      }
      ctx.log(
        `${succeeded} writes (${failed} failed) in ${writeSeconds.toFixed(1)} s; ` +
          `${got}/${expected} events; ${state.ended} watches ended early; server CPU ${cpu.toFixed(2)}, ` +
          `RSS ${mem.rss.toFixed(0)} MiB (peak ${mem.hwm.toFixed(0)})`,
      );
      if (samples === 0) throw new Error('no events delivered');
      ctx.log(
        `latency from response p50 ${percentile(fromAnswer, samples, 0.5).toFixed(1)} ms, ` +
          `p99 ${percentile(fromAnswer, samples, 0.99).toFixed(1)} ms`,
      );

      const sizeNote = ctx.quick
        ? `quick mode: ${watchers} watchers, ${rate} writes/s for ${seconds} s, not 1,000, ${OFFERED_WRITES_PER_SECOND}/s, 20 s`
        : undefined;
      const one = (value: number): ReturnType<typeof summarize> => summarize([value]);
      const figures: Figure[] = [
        {
          id: 'kubeApiServer.watchers',
          label: 'watchers connected',
          unit: 'watchers',
          ...one(connectedCount),
          goal: { op: '==', value: watchers, source: 'issue 3' },
          ...(sizeNote === undefined ? {} : { note: sizeNote }),
        },
        {
          id: 'kubeApiServer.writesPerSecond',
          label: 'writes per second achieved (creates and updates)',
          unit: 'writes/s',
          ...one(succeeded / writeSeconds),
          // --quick offers 50/s: too little to hold against the goal.
          ...(ctx.quick
            ? {}
            : { goal: { op: '>=', value: GOAL_WRITES_PER_SECOND, source: 'issue 3' } as const }),
          note: `${succeeded} successful, ${failed} failed writes in ${writeSeconds.toFixed(2)} s; offered: ${rate}/s`,
        },
        {
          id: 'kubeApiServer.delivered',
          label: 'events delivered ÷ events expected, all watchers',
          unit: 'ratio',
          ...one(expected === 0 ? 0 : got / expected),
          goal: { op: '==', value: 1, source: 'issue 3' },
          note: `${got} of ${expected} (${written.length} writes × ${connectedCount} watchers); ${state.ended} watches ended early`,
        },
        {
          id: 'kubeApiServer.latencyP50',
          label: "delivery latency p50 (write's response → event at a watcher)",
          unit: 'ms',
          ...one(percentile(fromAnswer, samples, 0.5)),
          note:
            `${samples} (write, watcher) pairs, ${BUCKET_MS} ms buckets; negative: the event ` +
            "reached the watcher before the write's response reached the writer (the server " +
            'fans out before it answers)',
        },
        {
          id: 'kubeApiServer.latencyP99',
          label: "delivery latency p99 (write's response → event at a watcher)",
          unit: 'ms',
          ...one(percentile(fromAnswer, samples, 0.99)),
        },
        {
          id: 'kubeApiServer.sentLatencyP50',
          label: 'write-to-watch latency p50 (write sent → event at a watcher)',
          unit: 'ms',
          ...one(percentile(fromSent, samples, 0.5)),
          noiseGroup: QUEUED,
        },
        {
          id: 'kubeApiServer.sentLatencyP99',
          label: 'write-to-watch latency p99 (write sent → event at a watcher)',
          unit: 'ms',
          ...one(percentile(fromSent, samples, 0.99)),
          noiseGroup: QUEUED,
        },
        {
          id: 'kubeApiServer.serverCpu',
          label: 'server CPU during the writes (user + system)',
          unit: 'cores',
          ...one(cpu),
          note: 'the server is one Node process: one core is its ceiling for JavaScript',
        },
        {
          id: 'kubeApiServer.serverCpuPerWrite',
          label: 'server CPU per write, fan-out to every watcher included',
          unit: 'ms',
          ...one((serverCpuSeconds * 1000) / Math.max(1, succeeded)),
          note:
            'CPU time, not wall time: it does not depend on what else the machine runs, so it is ' +
            'the figure to compare between runs',
        },
        {
          id: 'kubeApiServer.clientCpu',
          label: 'CPU of the benchmark process (watcher threads and writer) during the writes',
          unit: 'cores',
          ...one(clientCpuSeconds / writeSeconds),
          note: `${((clientCpuSeconds * 1000) / Math.max(1, succeeded)).toFixed(2)} ms per write`,
        },
        {
          id: 'kubeApiServer.serverRss',
          label: 'server RSS after the writes',
          unit: 'MiB',
          ...one(mem.rss),
          note: `peak (VmHWM) ${mem.hwm.toFixed(0)} MiB`,
        },
      ];
      return figures;
    } finally {
      await Promise.all(groups.map((g) => g.close()));
      writeAgent?.destroy();
      if (child !== undefined) await stopServer(child);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default benchmark;
