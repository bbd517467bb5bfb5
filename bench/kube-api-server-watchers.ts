// A worker thread of the kube-api-server benchmark: holds a share of the watchers, each a bare
// TLS connection carrying one watch request, and records when each written resourceVersion
// first reached each of them. Lean on purpose — no HTTP client, no JSON parsing — so the
// clients leave the CPU to the server they measure. Driven by messages from the benchmark.
import { connect, type TLSSocket } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';

export interface WatchersSetup {
  host: string;
  port: number;
  ca: string;
  token: string;
  /** Path and query of the watch request. */
  path: string;
  count: number;
  /** The resourceVersion the watches start from; slots hold rv − base − 1. */
  base: number;
  slots: number;
  connectConcurrency: number;
}

/** A write the benchmark made: its resourceVersion and when (epoch ms) it was sent and answered. */
export interface Written {
  rv: number;
  sent: number;
  answered: number;
}

export type ToWorker =
  | { kind: 'count'; rvs: number[] }
  | { kind: 'collect'; written: Written[]; lowestMs: number; bucketMs: number; buckets: number }
  | { kind: 'close' };

export type FromWorker =
  | { kind: 'connected'; count: number; ms: number }
  | { kind: 'failed'; error: string }
  | { kind: 'count'; delivered: number; ended: number }
  | {
      kind: 'collected';
      delivered: number;
      samples: number;
      fromSent: Uint32Array;
      fromAnswer: Uint32Array;
    };

const EVENT = Buffer.from('{"type":"');
const RV = Buffer.from('"resourceVersion":"');
const HEADERS_END = Buffer.from('\r\n\r\n');
/** performance.now() of a worker has its own origin: times are exchanged as epoch ms. */
const now = (): number => performance.timeOrigin + performance.now();

class Watcher {
  readonly arrivals: Float64Array;
  ended = false;
  #socket: TLSSocket | undefined;
  #rest: Buffer | undefined;
  #inBody = false;

  readonly setup: WatchersSetup;

  constructor(setup: WatchersSetup, slots: number) {
    this.setup = setup;
    this.arrivals = new Float64Array(slots);
  }

  start(): Promise<void> {
    const s = this.setup;
    return new Promise((resolve, reject) => {
      const socket = connect({ host: s.host, port: s.port, ca: s.ca, servername: s.host });
      this.#socket = socket;
      let ready = false;
      socket.once('secureConnect', () => {
        socket.write(
          `GET ${s.path} HTTP/1.1\r\nHost: ${s.host}:${s.port}\r\n` +
            `Authorization: Bearer ${s.token}\r\nAccept: application/json\r\n\r\n`,
        );
      });
      socket.on('data', (chunk: Buffer) => {
        if (!ready) {
          // The status line arrives with the headers (flushed before any event).
          const text = chunk.toString('latin1', 0, Math.min(chunk.length, 16));
          if (!text.startsWith('HTTP/1.1 200')) {
            reject(new Error(`watch answered ${chunk.toString('utf8').split('\r\n')[0]}`));
            socket.destroy();
            return;
          }
          ready = true;
          resolve();
        }
        this.#take(chunk);
      });
      socket.on('error', (error: Error) => {
        this.ended = true;
        if (!ready) reject(error);
      });
      socket.on('close', () => {
        this.ended = true;
      });
    });
  }

  /**
   * Walks the chunked body: each chunk is one event line (the server writes whole lines), so
   * the chunk sizes lead from event to event without scanning them. Of each event it reads the
   * type and the object's resourceVersion — the last one in the line: in
   * {"type":"ADDED","object":{"apiVersion":…,"metadata":{…"resourceVersion":"N"…},"spec":…}}
   * nothing after the metadata holds one — found by a short search back from the line's end.
   */
  #take(chunk: Buffer): void {
    const at = now();
    let buf = this.#rest === undefined ? chunk : Buffer.concat([this.#rest, chunk]);
    if (!this.#inBody) {
      const end = buf.indexOf(HEADERS_END);
      if (end < 0) {
        this.#rest = buf;
        return;
      }
      this.#inBody = true;
      buf = buf.subarray(end + HEADERS_END.length);
    }
    let pos = 0;
    for (;;) {
      // The chunk header: size in hex, CRLF.
      let size = 0;
      let i = pos;
      for (; i < buf.length && buf[i] !== 0x0d; i++) {
        const c = buf[i]!;
        size = size * 16 + (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
      }
      const data = i + 2;
      if (i >= buf.length || data + size + 2 > buf.length) break;
      if (size === 0) {
        this.ended = true;
        pos = buf.length;
        break;
      }
      this.#event(buf, data, data + size, at);
      pos = data + size + 2;
    }
    this.#rest = pos < buf.length ? buf.subarray(pos) : undefined;
  }

  #event(buf: Buffer, start: number, end: number, at: number): void {
    const type = buf[start + EVENT.length];
    if (type === 0x45 /* E */)
      throw new Error(`watch ERROR event: ${buf.toString('utf8', start, end)}`);
    if (type !== 0x41 /* A */ && type !== 0x4d /* M */) return;
    const key = buf.lastIndexOf(RV, end);
    if (key < start)
      throw new Error(`event without a resourceVersion: ${buf.toString('utf8', start, end)}`);
    let rv = 0;
    for (let i = key + RV.length; buf[i] !== 0x22; i++) rv = rv * 10 + buf[i]! - 0x30;
    const slot = rv - this.setup.base - 1;
    if (slot >= 0 && slot < this.arrivals.length && this.arrivals[slot] === 0)
      this.arrivals[slot] = at;
  }

  close(): void {
    this.#socket?.destroy();
  }
}

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

async function main(): Promise<void> {
  const setup = workerData as WatchersSetup;
  const watchers = Array.from({ length: setup.count }, () => new Watcher(setup, setup.slots));
  const started = performance.now();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: Math.min(setup.connectConcurrency, setup.count) }, async () => {
        while (next < watchers.length) await watchers[next++]!.start();
      }),
    );
  } catch (error) {
    post({ kind: 'failed', error: String(error) });
    for (const w of watchers) w.close();
    return;
  }
  post({ kind: 'connected', count: watchers.length, ms: performance.now() - started });

  const deliveredOf = (rvs: readonly number[]): number => {
    let n = 0;
    for (const w of watchers) {
      for (const rv of rvs) if (w.arrivals[rv - setup.base - 1]! > 0) n++;
    }
    return n;
  };
  parentPort!.on('message', (message: ToWorker) => {
    if (message.kind === 'count') {
      post({
        kind: 'count',
        delivered: deliveredOf(message.rvs),
        ended: watchers.filter((w) => w.ended).length,
      });
    } else if (message.kind === 'collect') {
      const { lowestMs, bucketMs, buckets } = message;
      const fromSent = new Uint32Array(buckets);
      const fromAnswer = new Uint32Array(buckets);
      const add = (hist: Uint32Array, ms: number): void => {
        const i = Math.floor((ms - lowestMs) / bucketMs);
        hist[Math.min(buckets - 1, Math.max(0, i))]!++;
      };
      let samples = 0;
      for (const w of watchers) {
        for (const t of message.written) {
          const at = w.arrivals[t.rv - setup.base - 1]!;
          if (at === 0) continue;
          add(fromSent, at - t.sent);
          add(fromAnswer, at - t.answered);
          samples++;
        }
      }
      post(
        {
          kind: 'collected',
          delivered: deliveredOf(message.written.map((t) => t.rv)),
          samples,
          fromSent,
          fromAnswer,
        },
        [fromSent.buffer, fromAnswer.buffer],
      );
    } else {
      for (const w of watchers) w.close();
      parentPort!.close();
    }
  });
}

await main();
