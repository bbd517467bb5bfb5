// An HTTP proxy on 127.0.0.1 in front of a plain-HTTP harness registry that plays the registry
// faults of the fault suite (issue 21): 503, 429 with Retry-After, a blob that hangs mid-body, a
// slow drip, a connection reset mid-blob, a blob cut short, and a blob whose bytes do not match
// its digest. Unlike the throttle proxy, which works on bytes, this one reads each request, so a
// fault can be aimed at blobs or manifests (or any request whose path a pattern matches) and at
// the first K of them, and switched on and off while a pull runs. The runtimes reach it as any
// loopback registry (plain HTTP, no configuration): a test names images `${proxy.host}/repo:tag`.
// Everything else, credentials included, passes through untouched.
import {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
  Agent,
  createServer,
  request,
} from 'node:http';
import type { Socket } from 'node:net';

/**
 * What a fault applies to: `blobs` (`/v2/…/blobs/…`), `manifests` (`/v2/…/manifests/…`), `any`
 * request, or the requests whose path and query a pattern matches.
 */
export type FaultScope = 'blobs' | 'manifests' | 'any' | RegExp;

/** The faults, by mode. Body faults apply only to answers with a body (2xx GET, non-empty). */
export type Fault =
  /** Answer 503 Service Unavailable without asking the registry. */
  | { mode: '503' }
  /** Answer 429 Too Many Requests with `Retry-After: retryAfterSeconds`. */
  | { mode: '429'; retryAfterSeconds: number }
  /** Send the headers and `afterBytes` of the body, then nothing; the connection stays open. */
  | { mode: 'hang'; afterBytes?: number }
  /** Send the body at `bytesPerSecond` for as long as the fault is in force. */
  | { mode: 'drip'; bytesPerSecond: number }
  /** Send the headers and `afterBytes` of the body, then reset the connection (TCP RST). */
  | { mode: 'reset'; afterBytes?: number }
  /** Send the registry's Content-Length but only `afterBytes` of the body, then close (FIN). */
  | { mode: 'truncate'; afterBytes?: number }
  /** Send the whole body with one byte changed: same length, another digest. */
  | { mode: 'wrong-digest' };

export type FaultMode = Fault['mode'];

export const FAULT_MODES: readonly FaultMode[] = [
  '503',
  '429',
  'hang',
  'drip',
  'reset',
  'truncate',
  'wrong-digest',
];

export interface FaultRule {
  fault: Fault;
  /** Default `any` for 503/429, `blobs` for the body faults. */
  scope?: FaultScope;
  /** Only the first `times` requests the fault applies to are faulted; then it ends by itself. */
  times?: number;
}

/** One request the proxy saw. */
export interface ProxiedRequest {
  /** When it arrived (ms since the epoch). */
  at: number;
  method: string;
  path: string;
  /** The status sent (or begun), 0 when the registry could not be reached. */
  status: number;
  /** The fault it got, if any. */
  fault?: FaultMode;
}

export interface FaultCounts {
  /** Requests in the fault's scope while it was in force. */
  seen: number;
  /** Requests it was applied to. */
  faulted: number;
}

const BODY_FAULTS = new Set<FaultMode>(['hang', 'drip', 'reset', 'truncate', 'wrong-digest']);

/** Request and answer headers that belong to one connection, not to the message. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

function inScope(scope: FaultScope, path: string): boolean {
  if (scope instanceof RegExp) return scope.test(path);
  if (scope === 'any') return true;
  return new RegExp(`^/v2/.+/${scope}/[^/]+$`).test(path.split('?')[0] ?? '');
}

function forwardHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
  }
  return out;
}

/** An error body in the distribution API's shape, so clients read it as a registry's. */
function errorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message, detail: null }] });
}

/** How long the part of a body sent before a reset has to reach the client. */
const RESET_DELAY_MS = 200;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `res` can take more data (or has closed). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done).once('close', done);
  });
}

interface Active {
  rule: FaultRule;
  scope: FaultScope;
  /** Requests faulted under this rule so far (for `times`). */
  faulted: number;
}

export class FaultProxy {
  readonly #server: Server;
  readonly #agent = new Agent({ keepAlive: true });
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #active: Active | undefined;
  /** Every request, in the order they arrived. */
  readonly requests: ProxiedRequest[] = [];
  readonly #counts = new Map<FaultMode, FaultCounts>(
    FAULT_MODES.map((mode) => [mode, { seen: 0, faulted: 0 }]),
  );

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((req, res) => {
      this.#handle(req, res);
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts a proxy to `target` (`host:port`, plain HTTP) on a free loopback port. */
  static async start(target: string): Promise<FaultProxy> {
    const [host = '', portText = ''] = target.split(':');
    const port = Number(portText);
    if (host === '' || !Number.isInteger(port) || port <= 0) {
      throw new Error(`FaultProxy: target must be host:port, got ${target}`);
    }
    const proxy = new FaultProxy({ host, port });
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', resolve);
    });
    return proxy;
  }

  /** `127.0.0.1:port`: the registry host to name images with. */
  get host(): string {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? `127.0.0.1:${address.port}` : '';
  }

  /** Puts `rule` in force (in place of any other); requests already answered are not touched. */
  inject(rule: FaultRule): void {
    validate(rule.fault);
    if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times > 0)) {
      throw new Error(`FaultProxy: times must be a positive integer, got ${rule.times}`);
    }
    const scope = rule.scope ?? (BODY_FAULTS.has(rule.fault.mode) ? 'blobs' : 'any');
    this.#active = { rule, scope, faulted: 0 };
  }

  /**
   * Ends the fault in force: new requests pass through, and a drip in progress speeds up to
   * full rate. Answers already hung, reset or cut stay as they are (their clients retry).
   */
  clear(): void {
    this.#active = undefined;
  }

  /** The mode in force, if any (a `times` rule ends by itself once used up). */
  get mode(): FaultMode | undefined {
    return this.#active?.rule.fault.mode;
  }

  /** Requests seen in scope and faulted, for `mode`, since the proxy started. */
  counts(mode: FaultMode): FaultCounts {
    return { ...this.#counts.get(mode)! };
  }

  /** Stops listening and drops every connection, hung ones included. */
  async stop(): Promise<void> {
    this.#active = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    this.#agent.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  /**
   * The fault in force if it covers a request to `path`: counted as seen, and for a status fault
   * (which needs no answer from the registry) taken at once.
   */
  #match(path: string): Active | undefined {
    const active = this.#active;
    if (active === undefined || !inScope(active.scope, path)) return undefined;
    this.#counts.get(active.rule.fault.mode)!.seen++;
    if (!BODY_FAULTS.has(active.rule.fault.mode)) this.#use(active);
    return active;
  }

  /** Counts one use of `active`; a rule with `times` ends once used up. */
  #use(active: Active): void {
    this.#counts.get(active.rule.fault.mode)!.faulted++;
    active.faulted++;
    if (active.rule.times !== undefined && active.faulted >= active.rule.times) {
      if (this.#active === active) this.#active = undefined;
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    const record: ProxiedRequest = { at: Date.now(), method: req.method ?? '', path, status: 0 };
    this.requests.push(record);
    const matched = this.#match(path);
    const fault = matched?.rule.fault;
    if (fault !== undefined && !BODY_FAULTS.has(fault.mode)) {
      req.resume();
      record.fault = fault.mode;
      this.#answerStatus(req, res, fault, record);
      return;
    }
    const upstream = request(
      {
        host: this.#target.host,
        port: this.#target.port,
        method: req.method,
        path,
        headers: forwardHeaders(req.headers),
        agent: this.#agent,
      },
      (answer) => {
        res.on('close', () => {
          // A client gone mid-answer: the registry's connection is not worth keeping.
          if (!answer.complete) upstream.destroy();
        });
        this.#relay(req, res, answer, record, matched);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  }

  #answerStatus(
    req: IncomingMessage,
    res: ServerResponse,
    fault: Fault,
    record: ProxiedRequest,
  ): void {
    const [status, body, extra] =
      fault.mode === '429'
        ? [
            429,
            errorBody('TOOMANYREQUESTS', 'too many requests (fault proxy)'),
            { 'retry-after': String(fault.retryAfterSeconds) },
          ]
        : [503, errorBody('UNAVAILABLE', 'service unavailable (fault proxy)'), {}];
    record.status = status;
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...extra,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  #relay(
    req: IncomingMessage,
    res: ServerResponse,
    answer: IncomingMessage,
    record: ProxiedRequest,
    matched: Active | undefined,
  ): void {
    const status = answer.statusCode ?? 502;
    record.status = status;
    const length = Number(answer.headers['content-length'] ?? Number.NaN);
    const hasBody = req.method === 'GET' && status >= 200 && status < 300 && length > 0;
    // The rule matched when the request came may have ended (or been replaced) since.
    const applies = hasBody && matched !== undefined && this.#active === matched;
    res.writeHead(status, forwardHeaders(answer.headers));
    if (!applies) {
      answer.pipe(res);
      return;
    }
    this.#use(matched);
    const fault = matched.rule.fault;
    record.fault = fault.mode;
    void this.#faultBody(res, answer, fault, length).catch(() => {
      res.destroy();
    });
  }

  async #faultBody(
    res: ServerResponse,
    answer: IncomingMessage,
    fault: Fault,
    length: number,
  ): Promise<void> {
    const socket = res.socket;
    if (socket === null) return;
    if (fault.mode === 'drip') {
      await this.#drip(res, answer, fault);
      return;
    }
    const body = await readAll(answer);
    if (fault.mode === 'wrong-digest') {
      const middle = Math.floor(body.length / 2);
      body[middle] = (body[middle] ?? 0) ^ 0xff;
      res.end(body);
      return;
    }
    if (fault.mode === '503' || fault.mode === '429') return; // answered before the registry was asked
    // Never the whole body: a fault "mid-blob" must leave something unsent.
    const part = Math.min(fault.afterBytes ?? Math.floor(length / 2), length - 1);
    await new Promise<void>((resolve) => {
      res.write(body.subarray(0, part), () => {
        resolve();
      });
    });
    if (fault.mode === 'reset') {
      // A moment first: the kernel drops whatever the client has not read yet when the RST
      // lands, and the fault is a reset after part of the body, not instead of it.
      await sleep(RESET_DELAY_MS);
      if (!socket.destroyed) socket.resetAndDestroy();
    } else if (fault.mode === 'truncate') socket.end();
    // 'hang': nothing more, and the connection stays open until the client or stop() ends it.
  }

  /** Sends the body in tenths of the rate, ten a second, while the drip is still in force. */
  async #drip(
    res: ServerResponse,
    answer: IncomingMessage,
    fault: { mode: 'drip'; bytesPerSecond: number },
  ): Promise<void> {
    const slice = Math.max(1, Math.floor(fault.bytesPerSecond / 10));
    for await (const chunk of answer as AsyncIterable<Buffer>) {
      let rest = chunk;
      while (rest.length > 0) {
        if (res.destroyed) return;
        const dripping = this.#active?.rule.fault === fault;
        const piece = dripping ? rest.subarray(0, slice) : rest;
        rest = rest.subarray(piece.length);
        if (!res.write(piece)) await drained(res);
        if (dripping) await sleep(100);
      }
    }
    res.end();
  }
}

function validate(fault: Fault): void {
  const bad = (what: string): Error => new Error(`FaultProxy: ${fault.mode}: ${what}`);
  const nonNegative = (value: number): boolean => Number.isFinite(value) && value >= 0;
  switch (fault.mode) {
    case '429':
      if (!nonNegative(fault.retryAfterSeconds)) throw bad('retryAfterSeconds must be >= 0');
      return;
    case 'drip':
      if (!(fault.bytesPerSecond > 0)) throw bad('bytesPerSecond must be positive');
      return;
    case 'hang':
    case 'reset':
    case 'truncate':
      if (fault.afterBytes !== undefined && !nonNegative(fault.afterBytes)) {
        throw bad('afterBytes must be >= 0');
      }
      return;
    default:
  }
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}
