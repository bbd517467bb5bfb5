// What the real-component harness needs from the machine, and installing it from Debian's
// packages when it is missing and we are root. Run directly (`node test/harness/prerequisites.ts
// --install`) it is `npm test`'s `pretest` step, since the unit tests of deploy/monitoring run
// promtool too.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, openSync, readSync, closeSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Requirement {
  binary: string;
  debianPackage: string;
  why: string;
}

export const REQUIREMENTS: readonly Requirement[] = [
  { binary: 'docker-registry', debianPackage: 'docker-registry', why: 'the OCI registry' },
  { binary: 'containerd', debianPackage: 'containerd', why: 'containerd with CRI' },
  { binary: 'containerd-shim-runc-v2', debianPackage: 'containerd', why: 'containerd tasks' },
  { binary: 'runc', debianPackage: 'runc', why: 'running containers' },
  { binary: 'dockerd', debianPackage: 'docker.io', why: 'Docker Engine' },
  { binary: 'docker', debianPackage: 'docker.io', why: 'building the image in the image test' },
  { binary: 'busybox', debianPackage: 'busybox-static', why: 'runnable test images' },
  { binary: 'openssl', debianPackage: 'openssl', why: 'the TLS registry certificates' },
  { binary: 'promtool', debianPackage: 'prometheus', why: 'checking metrics, alerts, dashboards' },
  // util-linux's script, in Debian's essential bsdutils: a pseudo-terminal for sync's live progress.
  { binary: 'script', debianPackage: 'bsdutils', why: 'a pseudo-terminal for sync progress' },
];

const SEARCH_PATH = [
  ...(process.env.PATH ?? '').split(delimiter),
  '/usr/local/sbin',
  '/usr/sbin',
  '/sbin',
  '/bin',
];

export function which(binary: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    if (dir === '') continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** True when the ELF file has no PT_INTERP program header, i.e. needs no dynamic loader. */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return false; // ELF64 only
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

export interface Check {
  root: boolean;
  missing: Requirement[];
  problems: string[];
}

export function checkPrerequisites(): Check {
  const missing = REQUIREMENTS.filter((r) => which(r.binary) === undefined);
  const problems: string[] = [];
  const busybox = which('busybox');
  if (busybox !== undefined && !isStaticElf(busybox)) {
    problems.push(
      `${busybox} is dynamically linked: install busybox-static (test images need a static binary)`,
    );
  }
  return { root: process.getuid?.() === 0, missing, problems };
}

export function describeMissing(check: Check): string {
  const packages = [...new Set(check.missing.map((r) => r.debianPackage))];
  const lines = check.missing.map(
    (r) => `  ${r.binary} (${r.why}) — Debian package ${r.debianPackage}`,
  );
  return [
    ...(lines.length > 0
      ? ['missing programs:', ...lines, `install: apt-get install -y ${packages.join(' ')}`]
      : []),
    ...check.problems,
  ].join('\n');
}

/** Installs the missing packages with apt-get. Needs root and Debian's package mirrors. */
export function installMissing(check: Check, log: (line: string) => void = () => undefined): void {
  const packages = [...new Set(check.missing.map((r) => r.debianPackage))];
  if (check.problems.length > 0) packages.push('busybox-static');
  if (packages.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing Debian packages: ${packages.join(' ')}`);
  execFileSync('apt-get', ['update', '-q'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const check = checkPrerequisites();
  const wantInstall = process.argv.includes('--install');
  if ((check.missing.length > 0 || check.problems.length > 0) && wantInstall && check.root) {
    installMissing(check, (line) => process.stdout.write(`${line}\n`));
  }
  const after = checkPrerequisites();
  if (after.missing.length > 0 || after.problems.length > 0) {
    process.stderr.write(`${describeMissing(after)}\n`);
    process.exit(1);
  }
  process.stdout.write('harness prerequisites: all present\n');
}
