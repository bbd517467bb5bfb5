// What the benchmarks ran on, for results.json and the doc: the machine, the software versions
// of the harness's components (the binaries it starts, and what the running daemons report),
// and how busy the machine was — with other work as well as ours — while each benchmark ran.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';

export interface Environment {
  cpu: { model: string; count: number };
  memoryGiB: number;
  kernel: string;
  node: string;
  /**
   * Component versions: the harness's binaries (`--version`), and what benchmarks add from the
   * running daemons (CRI Version, the Docker Engine API), and the prepull CLI build they ran.
   */
  components: Record<string, string>;
  /** 1, 5 and 15 minute load averages when the run started and when it ended. */
  load: { atStart: number[]; atEnd?: number[] };
}

function versionOf(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')[0]!
      .trim();
  } catch {
    return 'not installed';
  }
}

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** The component row naming the commit a run measured (`git describe --dirty`). */
export const COMMIT_COMPONENT = 'prepull commit';

export function collectEnvironment(): Environment {
  const list = cpus();
  return {
    cpu: { model: list[0]?.model.trim() ?? 'unknown', count: list.length },
    memoryGiB: round2(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    components: {
      containerd: versionOf('containerd', ['--version']),
      runc: versionOf('runc', ['--version']),
      dockerd: versionOf('dockerd', ['--version']),
      'docker-registry': versionOf('docker-registry', ['--version']),
      // Which code was measured: two runs are comparable as noise only on the same code.
      [COMMIT_COMPONENT]: versionOf('git', ['describe', '--always', '--dirty', '--abbrev=12']),
    },
    load: { atStart: loadavg().map(round2) },
  };
}

/** The environment as label → text rows, for the doc's machine table. */
export function environmentRows(env: Environment): [string, string][] {
  const load = (l: readonly number[]): string => l.map((x) => x.toFixed(2)).join(' / ');
  return [
    ['CPU', `${env.cpu.count} × ${env.cpu.model}`],
    ['memory', `${env.memoryGiB.toFixed(0)} GiB`],
    ['kernel', env.kernel],
    ['Node', env.node],
    ...Object.entries(env.components),
    [
      'load average (1 / 5 / 15 min)',
      `${load(env.load.atStart)} at the start` +
        (env.load.atEnd === undefined ? '' : `, ${load(env.load.atEnd)} at the end`),
    ],
  ];
}

const TICKS_PER_SECOND = 100;

interface CpuSnapshot {
  at: number;
  /** Busy and total jiffies of the whole machine (/proc/stat). */
  busy: number;
  total: number;
  /** CPU seconds of this process and its reaped children (/proc/self/stat). */
  own: number;
}

export function cpuSnapshot(): CpuSnapshot {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  // cpu user nice system idle iowait irq softirq steal …
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3]! + f[4]!;
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const s = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const own = (s[11]! + s[12]! + s[13]! + s[14]!) / TICKS_PER_SECOND;
  return { at: performance.now(), busy: total - idle, total, own };
}

export interface CpuUse {
  /** CPUs the whole machine kept busy on average (0 … CPU count). */
  machine: number;
  /**
   * Of those, what this process and the children it reaped (the harness's daemons, the CLIs it
   * ran) used; the rest is other work on the machine, and daemons' own children (shims).
   */
  ours: number;
  others: number;
}

export function cpuUse(from: CpuSnapshot, to: CpuSnapshot = cpuSnapshot()): CpuUse {
  const wall = (to.at - from.at) / 1000;
  const count = cpus().length;
  const machine =
    to.total > from.total ? ((to.busy - from.busy) / (to.total - from.total)) * count : 0;
  const ours = wall > 0 ? (to.own - from.own) / wall : 0;
  return {
    machine: round2(machine),
    ours: round2(Math.min(ours, machine)),
    others: round2(Math.max(0, machine - ours)),
  };
}
