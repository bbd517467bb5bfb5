// Finds and removes everything a harness root left on the machine: processes (found by their
// command line, working directory, root or executable pointing into the root, and their
// descendants), mounts below the root, cgroups named after it, files it wrote outside it, and
// the root itself. Shared by Harness.stop(), the reaper that runs when the test process dies,
// and the CI leak check.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Every harness root is a directory whose name starts with this, under the OS temp dir. */
export const HARNESS_PREFIX = 'prepull-harness-';

/**
 * The prefix of the roots this run creates: with PREPULL_HARNESS_RUN=<tag> (CI sets one), roots
 * are `prepull-harness-<tag>-XXXXXX`, so the leak check judges only its own run's harnesses and
 * not another run's on the same machine.
 */
export function runPrefix(env: NodeJS.ProcessEnv = process.env): string {
  const tag = env.PREPULL_HARNESS_RUN;
  return tag !== undefined && /^[a-z0-9-]+$/.test(tag)
    ? `${HARNESS_PREFIX}${tag}-`
    : HARNESS_PREFIX;
}

/** Files the harness had to write outside its root (for example Docker's certs.d), one per line. */
export const EXTERNAL_FILES = 'external-files';
/** PIDs of the processes the harness spawned, one per line. */
export const PID_FILE = 'pids';

export interface Leftovers {
  processes: { pid: number; why: string }[];
  mounts: string[];
  cgroups: string[];
  paths: string[];
}

function readProc(pid: string, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

function linkOf(pid: string, file: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/${file}`);
  } catch {
    return undefined;
  }
}

function parentOf(pid: string): number | undefined {
  const stat = readProc(pid, 'stat');
  if (stat === undefined) return undefined;
  // The command name in field 2 may hold spaces and parentheses: parse after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  if (state === 'Z') return undefined; // zombies hold nothing and cannot be killed
  return Number(fields[1]);
}

/**
 * Processes that belong to a root matching `marker`: their command line, cwd, root or exe
 * mentions it, or they descend from such a process or from one of `pids`.
 */
export function findProcesses(
  marker: string,
  pids: readonly number[] = [],
): { pid: number; why: string }[] {
  const self = process.pid;
  const parents = new Map<number, number>();
  const found = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const parent = parentOf(name);
    if (parent === undefined) continue;
    parents.set(pid, parent);
    if (pid === self) continue;
    const cmdline = (readProc(name, 'cmdline') ?? '').replaceAll('\0', ' ').trim();
    if (cmdline.includes(marker)) found.set(pid, `command line: ${cmdline.slice(0, 160)}`);
    for (const link of ['cwd', 'root', 'exe']) {
      const target = linkOf(name, link);
      if (!found.has(pid) && target?.includes(marker) === true) {
        found.set(pid, `${link} → ${target} (${cmdline.slice(0, 80)})`);
      }
    }
  }
  for (const pid of pids)
    if (parents.has(pid) && pid !== self) found.set(pid, 'started by harness');
  // Descendants: walk the parent links until a found process or init.
  for (const pid of parents.keys()) {
    if (found.has(pid) || pid === self) continue;
    for (let up = parents.get(pid); up !== undefined && up > 1; up = parents.get(up)) {
      if (found.has(up)) {
        found.set(pid, `descendant of ${up}`);
        break;
      }
    }
  }
  return [...found].map(([pid, why]) => ({ pid, why }));
}

/** Mount points whose path contains `marker`, deepest first. */
export function findMounts(marker: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point?.includes(marker) === true)
    .map((point) =>
      point.replace(/\\(\d{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))),
    );
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** cgroup directories (any v1 controller, or v2) whose name contains `marker`, deepest first. */
export function findCgroups(marker: string): string[] {
  const base = '/sys/fs/cgroup';
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (path.includes(marker)) found.push(path);
      // Harness cgroups sit directly below a controller; descend only into ours past depth 1.
      if (depth < 1 || path.includes(marker)) walk(path, depth + 1);
    }
  };
  walk(base, 0);
  return found.sort((a, b) => b.length - a.length);
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function killAll(marker: string, pids: readonly number[]): void {
  for (let round = 0; round < 50; round++) {
    const procs = findProcesses(marker, pids);
    if (procs.length === 0) return;
    for (const { pid } of procs) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    execFileSync('sleep', ['0.1']);
  }
}

function unmountAll(marker: string): void {
  for (let round = 0; round < 5; round++) {
    const mounts = findMounts(marker);
    if (mounts.length === 0) return;
    for (const point of mounts) {
      try {
        execFileSync('umount', ['-l', point], { stdio: 'ignore' });
      } catch {
        // a parent's lazy unmount may already have taken it
      }
    }
  }
}

/**
 * Removes everything `root` left behind. Forceful: processes get SIGKILL (a graceful stop, where
 * wanted, happens before this). Safe to run more than once and concurrently with nothing.
 */
export function cleanupRoot(root: string): Leftovers {
  const pids = readLines(join(root, PID_FILE)).map(Number);
  const external = readLines(join(root, EXTERNAL_FILES));
  killAll(root, pids);
  unmountAll(root);
  const cgroupMarker = root.split('/').pop() ?? root;
  for (const dir of findCgroups(cgroupMarker)) {
    try {
      rmdirSync(dir);
    } catch {
      // a cgroup still holding a process cannot go; reported by findLeftovers below
    }
  }
  for (const path of external) rmSync(path, { recursive: true, force: true });
  try {
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // reported below
  }
  return findLeftovers(root, external);
}

/** What remains of roots matching `marker` (a root path, or HARNESS_PREFIX for all of them). */
export function findLeftovers(marker: string, external: readonly string[] = []): Leftovers {
  const cgroupMarker = marker.split('/').pop() ?? marker;
  const tmp = tmpdir();
  const paths = marker.startsWith('/')
    ? [marker].filter((p) => existsSync(p))
    : readdirSync(tmp)
        .filter((name) => name.startsWith(marker))
        .map((name) => join(tmp, name));
  return {
    processes: findProcesses(marker),
    mounts: findMounts(marker),
    cgroups: findCgroups(cgroupMarker),
    paths: [...paths, ...external.filter((p) => existsSync(p))],
  };
}

export function isClean(leftovers: Leftovers): boolean {
  return (
    leftovers.processes.length === 0 &&
    leftovers.mounts.length === 0 &&
    leftovers.cgroups.length === 0 &&
    leftovers.paths.length === 0
  );
}

export function describeLeftovers(leftovers: Leftovers): string {
  const lines = [
    ...leftovers.processes.map((p) => `process ${p.pid}: ${p.why}`),
    ...leftovers.mounts.map((m) => `mount ${m}`),
    ...leftovers.cgroups.map((c) => `cgroup ${c}`),
    ...leftovers.paths.map((p) => `path ${p}`),
  ];
  return lines.join('\n');
}
