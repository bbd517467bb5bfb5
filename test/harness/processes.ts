// Starts the harness's daemons as supervised processes: each in its own process group (so a
// terminal's Ctrl-C reaches the reaper's cleanup, not a half-graceful daemon shutdown), output
// to a log file in the root, its PID recorded for cleanup, and readiness awaited with a deadline
// that names the component and shows its log tail when it fails.
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { PID_FILE } from './cleanup.ts';

export class HarnessError extends Error {
  readonly component: string;
  constructor(component: string, message: string, options?: { cause?: unknown }) {
    super(`${component}: ${message}`, options);
    this.name = 'HarnessError';
    this.component = component;
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Undefined while running. */
  exit(): Exit | undefined;
  exited: Promise<Exit>;
  tail(lines?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<Exit>;
}

export function tailOf(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

export function startProcess(
  root: string,
  name: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ManagedProcess {
  const logFile = join(root, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  if (child.pid === undefined) throw new HarnessError(name, `could not start ${command}`);
  const pid = child.pid;
  appendFileSync(join(root, PID_FILE), `${pid}\n`);
  let result: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.on('exit', (code, signal) => {
      result = { code, signal };
      resolve(result);
    });
    child.on('error', (error) => {
      appendFileSync(logFile, `\nspawn error: ${error.message}\n`);
      result = { code: -1, signal: null };
      resolve(result);
    });
  });
  // The harness must not keep the test process alive on its own.
  child.unref();
  return {
    name,
    pid,
    logFile,
    exited,
    exit: () => result,
    tail: (lines) => tailOf(logFile, lines),
    async stop(graceMs = 5000) {
      if (result !== undefined) return result;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return exited;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

/**
 * Polls `check` until it returns a value, the deadline passes, or `proc` exits; the error names
 * the component, says what was awaited, and carries the log tail.
 */
export async function waitUntil<T>(
  what: string,
  proc: ManagedProcess,
  check: () => Promise<T | undefined>,
  deadlineMs = 30_000,
): Promise<T> {
  const start = Date.now();
  let lastError: unknown;
  while (Date.now() - start < deadlineMs) {
    const exit = proc.exit();
    if (exit !== undefined) {
      throw new HarnessError(
        proc.name,
        `exited (code ${exit.code}, signal ${exit.signal}) before ${what}; log ${proc.logFile}:\n${proc.tail()}`,
      );
    }
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }
  const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new HarnessError(
    proc.name,
    `not ready after ${deadlineMs} ms: ${what}${why}; log ${proc.logFile}:\n${proc.tail()}`,
  );
}

/**
 * A harness daemon that can be stopped — gracefully, or abruptly as a crash would — and started
 * again with the same configuration: what the registry, containerd and Docker Engine share.
 */
export abstract class Daemon {
  protected readonly root: string;
  protected proc: ManagedProcess | undefined;
  /** How long a graceful stop may take before SIGKILL. */
  protected abstract readonly graceMs: number;

  protected constructor(root: string) {
    this.root = root;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exit() === undefined;
  }

  get logFile(): string | undefined {
    return this.proc?.logFile;
  }

  /** Starts the daemon (again) and waits until it answers. */
  abstract start(): Promise<void>;

  /** Stops the daemon; with `kill`, abruptly (SIGKILL), as a crash would. */
  async stop(options: { kill?: boolean } = {}): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) return;
    if (options.kill === true && proc.exit() === undefined) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await proc.stop(this.graceMs);
  }
}
