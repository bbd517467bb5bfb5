// Shared by the `prepull sync` benchmarks (issue 6): runs the real CLI as a subprocess, writes
// PrePull files, loads many small images into containerd cheaply, scrapes /metrics, reads RSS,
// and waits until a removed image has really left containerd's content store.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeletCri } from '../test/harness/cri.ts';
import { type BuiltImage, buildImage, fileLayer } from '../test/harness/images.ts';
import { type HarnessInfo, type RegistryEndpoint, registryClient } from '../test/harness/index.ts';
import { assertBuildFresh } from '../test/harness/sync-cli.ts';
import { grpcWithoutProtoLoader } from '../scripts/no-proto-loader.ts';
import { pool } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The launcher users run; it runs dist/ when built, src/ otherwise. */
export const PREPULL_BIN = join(ROOT, 'bin/prepull.js');
const MAX_IMAGES_PER_PREPULL = 256;

/**
 * Which code `bin/prepull.js` will run. When dist/ exists it must not be older than src/ (the
 * same check the sync integration tests make): a benchmark of stale output would publish
 * figures of code that is no longer there.
 */
export function cliBuild(): string {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) return 'src/ (no build; Node strips the types)';
  assertBuildFresh();
  return 'dist/ (npm run build: the esbuild bundle)';
}

export interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock ms from just before spawn to the exit event. */
  ms: number;
  /** Date.now() just before spawn, to place the log's timestamps. */
  spawnedAt: number;
  /**
   * CPU seconds (user + system) the process used, from this process's reaped-children totals;
   * exact while no other child of this process exits during the run.
   */
  cpuSeconds: number;
}

/** One `prepull sync …` to completion (with --once), timed from spawn to exit. */
export function runSync(args: readonly string[], timeoutMs = 600_000): Promise<Exited> {
  return runNode([PREPULL_BIN, 'sync', ...args], timeoutMs, 'prepull sync');
}

/**
 * bench/cri-pull.ts bundled into `dir` the way `npm run build` bundles the CLI (esbuild, ES
 * modules, gRPC in a chunk loaded after the compile cache is on, gRPC's proto-loader left out by
 * the plugin scripts/build.ts uses): the least a Node.js command pays to pull through CRI.
 * Returns the entry file.
 */
export async function buildCriPull(dir: string): Promise<string> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(ROOT, 'bench/cri-pull.ts')],
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    banner: {
      js: "import { createRequire as __benchCreateRequire } from 'node:module';\nconst require = __benchCreateRequire(import.meta.url);",
    },
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
    plugins: [grpcWithoutProtoLoader],
  });
  return join(dir, 'cri-pull.mjs');
}

/** Runs `node ARGS…` (this process's Node), timed from spawn to exit, its output collected. */
export function runNode(
  args: readonly string[],
  timeoutMs = 600_000,
  what = `node ${args[0] ?? ''}`,
): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const spawnedAt = Date.now();
    const cpuBefore = childrenCpuSeconds();
    const started = performance.now();
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} ran longer than ${timeoutMs} ms:\n${tail(stderr)}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      const ms = performance.now() - started;
      clearTimeout(timer);
      // 'close' follows once the pipes drain; the time is taken at exit.
      child.on('close', () => {
        const cpuSeconds = childrenCpuSeconds() - cpuBefore;
        resolve({ code, signal, stdout, stderr, ms, spawnedAt, cpuSeconds });
      });
    });
  });
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The JSON document `sync --once --output json` prints; throws unless every image is Present. */
export interface SyncReport {
  ok: boolean;
  images: {
    image: string;
    state: string;
    reason: string;
    imageId?: string;
    pinned?: boolean;
    pullDurationMs?: number;
  }[];
}

export function expectAllPresent(run: Exited, expected: number): SyncReport {
  let report: SyncReport;
  try {
    report = JSON.parse(run.stdout) as SyncReport;
  } catch {
    throw new Error(`prepull sync exited ${run.code} without a JSON report:\n${tail(run.stderr)}`);
  }
  const present = report.images.filter((i) => i.state === 'Present').length;
  if (run.code !== 0 || !report.ok || present !== expected) {
    throw new Error(
      `prepull sync exited ${run.code} with ${present}/${report.images.length} images Present ` +
        `(expected ${expected}):\n${tail(run.stderr)}`,
    );
  }
  return report;
}

/** A long-running `prepull sync` (no --once, --output json) with its metrics server on a free port. */
export class SyncDaemon {
  readonly child: ChildProcess;
  readonly started = performance.now();
  stdout = '';
  stderr = '';
  private exited: Promise<void>;

  private constructor(args: readonly string[]) {
    this.child = spawn(
      process.execPath,
      [PREPULL_BIN, 'sync', ...args, '--output', 'json', '--metrics-address', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', () => {
        resolve();
      });
    });
  }

  static start(args: readonly string[]): SyncDaemon {
    return new SyncDaemon(args);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Waits for the first report (printed once every image has settled) and checks that every one
   * of the `expected` images is Present and verified where asked. Returns ms from spawn to it.
   */
  async settled(expected: number, timeoutMs = 300_000): Promise<number> {
    // renderJson indents, so the first document ends at the first closing brace in column 0.
    const text = await this.waitFor(
      () => {
        const end = this.stdout.indexOf('\n}\n');
        return end < 0 ? undefined : this.stdout.slice(0, end + 3);
      },
      'the first report',
      timeoutMs,
    );
    const ms = performance.now() - this.started;
    expectAllPresent(
      { code: 0, signal: null, stdout: text, stderr: this.stderr, ms, spawnedAt: 0, cpuSeconds: 0 },
      expected,
    );
    return ms;
  }

  /** The metrics URL, from the "serving /metrics" log line. */
  async metricsUrl(timeoutMs = 60_000): Promise<string> {
    const match = await this.waitFor(
      () => /"address":"([^"]+)","msg":"serving \/metrics/.exec(this.stderr) ?? undefined,
      'the metrics server',
      timeoutMs,
    );
    return `http://${match[1]}/metrics`;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const killed = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(killed);
  }

  private async waitFor<T>(probe: () => T | undefined, what: string, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `prepull sync exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}:\n${tail(this.stderr)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no ${what} from prepull sync within ${timeoutMs} ms:\n${tail(this.stderr)}`,
        );
      }
      await sleep(20);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Arguments every benchmark passes: the harness containerd and its plain-HTTP registry. */
export function syncArgs(info: HarnessInfo, files: readonly string[]): string[] {
  const plain = info.registries.plain!;
  return [
    ...files.flatMap((f) => ['-f', f]),
    '--runtime-endpoint',
    `unix://${info.containerd!.socket}`,
    '--insecure-registry',
    plain.host,
    '--node-name',
    'bench',
  ];
}

/**
 * Writes PrePull objects naming `images` (at most 256 per object, as the API allows) to `file`,
 * one JSON document per object (YAML is a superset of JSON).
 */
export function writePrePulls(
  file: string,
  name: string,
  images: readonly string[],
  spec: Record<string, unknown> = {},
): string {
  const docs: string[] = [];
  for (let i = 0; i < images.length; i += MAX_IMAGES_PER_PREPULL) {
    const chunk = images.slice(i, i + MAX_IMAGES_PER_PREPULL);
    docs.push(
      JSON.stringify({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: `${name}-${i / MAX_IMAGES_PER_PREPULL}`, namespace: 'bench' },
        spec: { ...spec, images: chunk.map((image) => ({ image })) },
      }),
    );
  }
  writeFileSync(file, `${docs.join('\n---\n')}\n`);
  return file;
}

/**
 * Pushes `count` distinct small images (one shared ~1 MB layer, a distinct config each, so each
 * is its own image in containerd with its own ID, tag and repo digest) to `repository:t<i>`.
 */
export async function pushSmallImages(
  endpoint: RegistryEndpoint,
  repository: string,
  count: number,
): Promise<{ refs: string[]; images: BuiltImage[] }> {
  const layer = fileLayer({ '/bench/data': Buffer.alloc(1 << 20, 7) });
  const images = Array.from({ length: count }, (_, i) =>
    buildImage({ layers: [layer], labels: { 'bench.index': String(i) } }),
  );
  const tags = images.map((image, i) => ({ tag: `t${i}`, image }));
  const client = registryClient(endpoint);
  try {
    // The shared layer lands once before the concurrent pushes: distribution 2.8 can lose a blob
    // that two uploads to one repository commit at the same moment.
    await client.push(repository, tags[0]!.tag, tags[0]!.image);
    await pool(tags.slice(1), 8, async (t) => {
      await client.push(repository, t.tag, t.image);
    });
  } finally {
    client.close();
  }
  return { refs: tags.map((t) => `${endpoint.host}/${repository}:${t.tag}`), images };
}

/** Pulls `refs` through CRI, as kubelet would, `limit` at a time. */
export async function pullAll(cri: KubeletCri, refs: readonly string[], limit = 8): Promise<void> {
  await pool(refs, limit, async (ref) => {
    await cri.pullImage(ref);
  });
}

/** One series of a Prometheus text exposition. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export function parseMetric(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[^{\s]+(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]!] = pair[2]!;
    out.push({ labels, value: Number(match[2]) });
  }
  return out;
}

export async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

/** prepull_runtime_calls_total summed per operation (all result codes). */
export function runtimeCalls(text: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const s of parseMetric(text, 'prepull_runtime_calls_total')) {
    const operation = s.labels.operation ?? '?';
    calls[operation] = (calls[operation] ?? 0) + s.value;
  }
  return calls;
}

export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** One pino line of sync's stderr, with the fields the benchmarks read. */
export interface LogLine {
  time: string;
  msg: string;
  image?: string;
  state?: string;
  durationMs?: number;
}

export function logLines(stderr: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** The process whose command line contains `fragment` (a harness daemon, by its config path). */
export function pidOf(fragment: string): number {
  const out = execFileSync('pgrep', ['-f', '--', fragment], { encoding: 'utf8' }).trim();
  const pids = out.split('\n').filter(Boolean).map(Number);
  if (pids.length !== 1) throw new Error(`expected one process matching ${fragment}, found ${out}`);
  return pids[0]!;
}

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** User plus system CPU seconds a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces) start at the state, field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * CPU seconds a process's live threads have run, to the nanosecond: the first field of
 * /proc/<pid>/task/<tid>/schedstat, summed. /proc/<pid>/stat counts in ticks (10 ms), too coarse
 * for a mostly idle process over a few seconds; a thread that exits in between takes its time
 * with it, so this is for steady states, not for work that starts and ends threads.
 */
export function cpuSecondsPrecise(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread exited between the listing and the read: its time is gone with it.
    }
  }
  return ns / 1e9;
}

/** CPU seconds of this process's children that have exited and been reaped (cutime + cstime). */
export function childrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}

/** Resident set size of a process, MiB, from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (kb === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb[1]) / 1024;
}

/** Runs the arms in turn (A B C A B C …) `rounds` times; `prepare` runs untimed before each. */
export async function rotate(
  rounds: number,
  arms: readonly (() => Promise<number>)[],
  prepare: () => Promise<void> = () => Promise.resolve(),
): Promise<number[][]> {
  const samples = arms.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (const [i, arm] of arms.entries()) {
      await prepare();
      samples[i]!.push(await arm());
    }
  }
  return samples;
}
