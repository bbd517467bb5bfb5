// The controller as a process of its own for bench/controller.bench.ts, until `prepull
// controller` (the CLI) exists: builds a KubeClient from --kubeconfig, runs the real Controller
// (src/controller/controller.ts) — start(), then lead() with a signal that aborts only at
// SIGTERM: no leader election — and prints one line on stdout once its informers have synced.
// Counts what the controller counts (ControllerMetrics) and prints them as JSON at SIGTERM, with
// the time the controller sent each PrePull status write.
//
// BENCH_CONTROLLER_MEMORY_LOG=FILE appends process.memoryUsage() to FILE every 2 s.
//
//   node bench/controller-process.ts --kubeconfig F [--status-interval-ms 1000]
//     [--admission-timeout-ms 300000] [--max-concurrent-nodes N] [--log-level warn]
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/clock.ts';
import { Controller, type ControllerMetrics } from '../src/controller/controller.ts';
import { KubeClient } from '../src/kube/client.ts';
import { type LogLevel, createLogger } from '../src/telemetry/logger.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'status-interval-ms': { type: 'string', default: '1000' },
    'admission-timeout-ms': { type: 'string', default: '300000' },
    'max-concurrent-nodes': { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
  },
});

const counts: Record<string, number> = {};
const count = (key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1;
};
const metrics: ControllerMetrics = {
  statusWrites: (result) => {
    count(`statusWrites.${result}`);
  },
  nodePatches: (kind, result) => {
    count(`nodePatches.${kind}.${result}`);
  },
  admitted: () => undefined,
  watchRestart: (resource) => {
    count(`watchRestart.${resource}`);
  },
  prePulls: () => undefined,
};

// When the controller sends each PrePull status write, on its own clock: the server sees them
// later, by however long each waited in the connection and the server's queue.
const sent = new Map<string, number[]>();
const kube = KubeClient.load(values.kubeconfig);
const counted: Pick<KubeClient, 'request' | 'informer'> = {
  request: (method, path, options) => {
    if (method === 'PATCH' && path.endsWith('/status')) {
      const times = sent.get(path) ?? [];
      times.push(performance.now());
      sent.set(path, times);
    }
    return kube.request(method, path, options);
  },
  informer: (path, selectors) => kube.informer(path, selectors),
};

/** When each PrePull's status writes were sent (performance.now(), ms), by PrePull name. */
function sendTimes(): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [path, times] of sent)
    out[path.split('/').at(-2)!] = times.map((t) => Math.round(t * 10) / 10);
  return out;
}

const log = createLogger(values['log-level'] as LogLevel);
const controller = new Controller({
  options: {
    maxConcurrentNodes:
      values['max-concurrent-nodes'] === undefined
        ? undefined
        : Number(values['max-concurrent-nodes']),
    admissionTimeoutMs: Number(values['admission-timeout-ms']),
    statusIntervalMs: Number(values['status-interval-ms']),
  },
  clock: systemClock,
  log,
  metrics,
  kube: counted,
});

const lease = new AbortController();
process.once('SIGTERM', () => {
  lease.abort();
  controller.stop().then(
    () => {
      process.stdout.write(`${JSON.stringify({ stopped: counts, sentMs: sendTimes() })}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`controller stop failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});

await controller.start();
controller.lead(lease.signal);
process.stdout.write(`${JSON.stringify({ synced: true })}\n`);
const memoryLog = process.env.BENCH_CONTROLLER_MEMORY_LOG;
if (memoryLog !== undefined) {
  const started = performance.now();
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
  setInterval(() => {
    const m = process.memoryUsage();
    appendFileSync(
      memoryLog,
      `${((performance.now() - started) / 1000).toFixed(0)} s: rss ${mib(m.rss)} heapTotal ` +
        `${mib(m.heapTotal)} heapUsed ${mib(m.heapUsed)} external ${mib(m.external)} MiB\n`,
    );
  }, 2000).unref();
}
