// A worker thread as a benchmark talks to it: messages sent, and replies awaited by kind; an
// error in the worker (or a `failed` message from it) fails the wait. The fleet benchmark's agent
// threads and the controller benchmark's node simulator are both driven through it.
import { Worker } from 'node:worker_threads';

/** How the worker is named in errors: "<failed>: …" and "no <kind> from <from> within …". */
export interface MailboxNames {
  failed: string;
  from: string;
}

interface Failed {
  kind: 'failed';
  error: string;
}

export class WorkerMailbox<From extends { kind: string }, To> {
  readonly worker: Worker;
  readonly #names: MailboxNames;
  readonly #messages: (From | Failed)[] = [];
  #wake: (() => void) | undefined;

  constructor(url: URL, workerData: unknown, names: MailboxNames) {
    this.#names = names;
    this.worker = new Worker(url, { workerData });
    this.worker.on('message', (m: From) => {
      this.#messages.push(m);
      this.#wake?.();
    });
    this.worker.on('error', (error: Error) => {
      this.#messages.push({ kind: 'failed', error: error.stack ?? error.message });
      this.#wake?.();
    });
  }

  /** The next message of `kind` (others are dropped), within `timeoutMs`. */
  async next<K extends From['kind']>(
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<From, { kind: K }>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const message = this.#messages.shift();
      if (message?.kind === 'failed')
        throw new Error(`${this.#names.failed}: ${(message as Failed).error}`);
      if (message?.kind === kind) return message as Extract<From, { kind: K }>;
      if (message !== undefined) continue;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${kind} from ${this.#names.from} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  send(message: To): void {
    this.worker.postMessage(message);
  }
}
