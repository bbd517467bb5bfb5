// Runs the real `prepull sync` as a subprocess — `bin/prepull.js` on this Node — for integration
// tests: stdout is the result, stderr the JSON log lines, read as they arrive so a test can act
// on a state change (send SIGTERM once an image is Pulling) and assert on what the process said.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The launcher users run; it runs dist/ when built, src/ otherwise. */
export const PREPULL_BIN = join(ROOT, 'bin/prepull.js');

/** One pino line from stderr (the fields prepull's engine logs, and any others). */
export interface LogLine {
  level: string;
  msg: string;
  image?: string;
  state?: string;
  reason?: string;
  message?: string;
  digest?: string;
  [field: string]: unknown;
}

export interface SyncExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  logs: LogLine[];
  /** stderr lines that were not JSON (there should be none). */
  otherStderr: string[];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    const built = /\.(ts|js|proto)$/.test(entry.name) && !entry.name.endsWith('.test.ts');
    return built ? [path] : [];
  });
}

/**
 * Fails when dist/ exists but is older than what it is built from — a source file, a build
 * script or the dependencies (dist/ is one bundle of all of them, built at once by
 * `npm run build`): bin/prepull.js would then run stale code and the tests would prove nothing
 * about src/. Without dist/, the launcher runs src/.
 */
export function assertBuildFresh(): void {
  const bundle = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(bundle)) return;
  const builtAt = statSync(bundle).mtimeMs;
  const inputs = [
    ...sourceFiles(join(ROOT, 'src')),
    join(ROOT, 'scripts/build.ts'),
    ...sourceFiles(join(ROOT, 'scripts/bundle')),
    join(ROOT, 'package-lock.json'),
  ];
  for (const file of inputs) {
    if (statSync(file).mtimeMs > builtAt) {
      throw new Error(
        `dist/ is older than ${relative(ROOT, file)}: run \`npm run build\` (bin/prepull.js runs dist/ when it exists)`,
      );
    }
  }
}

interface LogWaiter {
  predicate: (line: LogLine) => boolean;
  resolve: (line: LogLine) => void;
}

/** A running `prepull sync`. */
export class SyncProcess {
  readonly logs: LogLine[] = [];
  readonly otherStderr: string[] = [];
  readonly startedAt = Date.now();
  stdout = '';
  stderr = '';
  private readonly child: ChildProcess;
  private readonly exit: Promise<SyncExit>;
  private waiters: LogWaiter[] = [];
  private partial = '';

  /** `env` adds to (or overrides) this process's environment for the child. */
  constructor(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    this.child = spawn(process.execPath, [PREPULL_BIN, 'sync', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.onStderr(chunk);
    });
    this.exit = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code, signal) => {
        this.flush();
        resolve({
          code,
          signal,
          stdout: this.stdout,
          stderr: this.stderr,
          logs: this.logs,
          otherStderr: this.otherStderr,
        });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /**
   * Resolves with the first log line (past or future) that `predicate` accepts. On a timeout
   * the process is killed, so a failing test leaves nothing running.
   */
  waitForLog(
    predicate: (line: LogLine) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<LogLine> {
    const seen = this.logs.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        this.child.kill('SIGKILL');
        reject(new Error(`no log line ${what} within ${timeoutMs} ms; stderr:\n${this.tail()}`));
      }, timeoutMs);
      const waiter: LogWaiter = {
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.waiters.push(waiter);
      void this.exit.then(() => {
        if (!this.waiters.includes(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`prepull sync exited before logging ${what}; stderr:\n${this.tail()}`));
      });
    });
  }

  /** Resolves once stdout contains `text`; on a timeout the process is killed. */
  async waitForStdout(text: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.stdout.includes(text)) {
      if (Date.now() > deadline) {
        this.child.kill('SIGKILL');
        throw new Error(
          `stdout never showed ${JSON.stringify(text)} within ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.tail()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** The exit; past `timeoutMs` the process is killed and this rejects. */
  async exited(timeoutMs = 60_000): Promise<SyncExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(
          new Error(`prepull sync still running after ${timeoutMs} ms; stderr:\n${this.tail()}`),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private tail(lines = 15): string {
    return this.stderr.split('\n').slice(-lines).join('\n');
  }

  private onStderr(chunk: string): void {
    this.stderr += chunk;
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const raw of lines) this.onLine(raw);
  }

  private flush(): void {
    this.onLine(this.partial);
    this.partial = '';
  }

  private onLine(raw: string): void {
    if (raw.trim() === '') return;
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch {
      this.otherStderr.push(raw);
      return;
    }
    this.logs.push(line);
    for (const waiter of this.waiters.filter((w) => w.predicate(line))) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(line);
    }
  }
}

/** Runs `prepull sync …` to its exit (for `--once`). */
export function runSync(
  args: readonly string[],
  timeoutMs = 60_000,
  env: Readonly<Record<string, string>> = {},
): Promise<SyncExit> {
  return new SyncProcess(args, env).exited(timeoutMs);
}

/** Log lines that say `image` entered `state`. */
export function stateLines(logs: readonly LogLine[], image: string, state?: string): LogLine[] {
  return logs.filter(
    (l) =>
      l.msg === 'image state' && l.image === image && (state === undefined || l.state === state),
  );
}

/** A PrePull document (JSON is YAML) naming `images`, with extra spec fields. */
export function prePullDocument(
  name: string,
  images: readonly string[],
  spec: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name, namespace: 'sync-test' },
    spec: { images: images.map((image) => ({ image })), ...spec },
  });
}

/** Writes a PrePull file into `dir` and returns its path. */
export function writePrePull(
  dir: string,
  name: string,
  images: readonly string[],
  spec: Record<string, unknown> = {},
): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, `${prePullDocument(name, images, spec)}\n`);
  return path;
}

/** A docker config.json giving `username`/`password` for registry `host`. */
export function dockerConfigJson(host: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return `${JSON.stringify({ auths: { [host]: { auth } } }, null, 2)}\n`;
}
