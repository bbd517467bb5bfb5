// Runs the real `prepull agent` or `prepull controller` as a subprocess — `bin/prepull.js` on this
// Node, as the DaemonSet and the Deployment run it — for integration tests: stdout and stderr kept
// whole (to search for secrets), stderr also parsed as JSON log lines as they arrive, so a test
// can wait for one (the metrics address) and assert on what the process said.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type LogLine, PREPULL_BIN } from './sync-cli.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from `kill()` to the exit (undefined when it was not killed). */
  afterKillMs: number | undefined;
}

/** A running long-lived `prepull` command (`agent`, `controller`). */
export class PrepullProcess {
  /** The subcommand, as errors name the process. */
  readonly command: string;
  readonly name: string;
  readonly logs: LogLine[] = [];
  /** stderr lines that were not JSON (there should be none). */
  readonly otherStderr: string[] = [];
  stdout = '';
  stderr = '';
  #killedAt: number | undefined;
  #partial = '';
  readonly #child: ChildProcess;
  readonly #exit: Promise<AgentExit>;

  /** `name` labels the process in errors (the node name, the replica's identity). */
  constructor(command: string, name: string, args: readonly string[]) {
    this.command = command;
    this.name = name;
    this.#child = spawn(process.execPath, [PREPULL_BIN, command, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
    });
    this.#child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      const lines = (this.#partial + chunk).split('\n');
      this.#partial = lines.pop() ?? '';
      for (const raw of lines) this.#onLine(raw);
    });
    this.#exit = new Promise((resolve, reject) => {
      this.#child.once('error', reject);
      this.#child.once('close', (code, signal) => {
        this.#onLine(this.#partial);
        this.#partial = '';
        const afterKillMs = this.#killedAt === undefined ? undefined : Date.now() - this.#killedAt;
        resolve({ code, signal, afterKillMs });
      });
    });
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The first log line (past or future) `predicate` accepts; rejects on exit or timeout. */
  async waitForLog(
    predicate: (line: LogLine) => boolean,
    what: string,
    timeoutMs = 60_000,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs.find(predicate);
      if (line !== undefined) return line;
      if (!this.running || Date.now() > deadline) {
        throw new Error(
          `${this.command} ${this.name} ${this.running ? `did not log ${what} within ${timeoutMs} ms` : `exited before logging ${what}`}; stderr:\n${this.tail()}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.#killedAt === undefined) this.#killedAt = Date.now();
    this.#child.kill(signal);
  }

  /** The exit; past `timeoutMs` the process is killed (SIGKILL) and this rejects. */
  async exited(timeoutMs = 60_000): Promise<AgentExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.#child.kill('SIGKILL');
        reject(
          new Error(
            `${this.command} ${this.name} still running after ${timeoutMs} ms; stderr:\n${this.tail()}`,
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.#exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last lines of stderr, for error messages. */
  tail(lines = 20): string {
    return this.stderr.split('\n').slice(-lines).join('\n');
  }

  #onLine(raw: string): void {
    if (raw.trim() === '') return;
    try {
      this.logs.push(JSON.parse(raw) as LogLine);
    } catch {
      this.otherStderr.push(raw);
    }
  }
}

/** A running `prepull agent`. */
export class AgentProcess extends PrepullProcess {
  /** `name` labels the process in errors (the node name). */
  constructor(name: string, args: readonly string[]) {
    super('agent', name, args);
  }
}

/** A running `prepull controller` replica. */
export class ControllerProcess extends PrepullProcess {
  /** `name` labels the process in errors (its --identity). */
  constructor(name: string, args: readonly string[]) {
    super('controller', name, args);
  }
}
