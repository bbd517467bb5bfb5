// HTTP for the registry client, on undici: keep-alive pools per origin, a concurrency limit per
// registry host, per-request timeouts, and retries with capped exponential backoff and full
// jitter on 429, 5xx and connection failures (honouring Retry-After), within a budget per
// request. Connection-level failures become coded PrepullErrors here; HTTP statuses are the
// caller's to interpret, because only it knows what a 404 or 401 means.

import { createHash } from 'node:crypto';
import { getCACertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import type * as HttpParts from './http.ts';
import { type Clock, systemClock } from '../clock.ts';
import { type ErrorCode, PrepullError } from '../errors.ts';
import { type ProxyConfig, proxyFor, redactProxy } from './proxy.ts';
import { Semaphore } from '../semaphore.ts';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Backoff ceiling before the first retry; it doubles for each further retry. */
  readonly baseDelayMs: number;
  /** The largest backoff ceiling. */
  readonly maxDelayMs: number;
  /**
   * Time one request may take from its first attempt, waits included. A retry whose wait would
   * end past it is not made: the last answer or error is returned, and the caller's own backoff
   * (the reconciler's) takes over.
   */
  readonly budgetMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  budgetMs: 30_000,
};

type Undici = typeof HttpParts;
let undici: Promise<Undici> | undefined;

/**
 * undici loads with the first request, not with the module: a `sync --once` loads it while the
 * runtime pulls (the registry check runs alongside the pull), not before the pull can start.
 */
function loadUndici(): Promise<Undici> {
  undici ??= import('./http.ts');
  return undici;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_CONCURRENCY_PER_REGISTRY = 16;
/** Manifests are small; containerd refuses those over 4 MiB too. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 30_000;

/** One attempt of one request, as metrics and logs want it. Never carries headers or bodies. */
export interface RequestEvent {
  /** host[:port] contacted: the registry, a mirror, or a token service. */
  readonly registry: string;
  readonly method: string;
  /** URL path without query. */
  readonly path: string;
  /** Absent when no answer came (see `error`). */
  readonly status?: number;
  readonly durationMs: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Why no answer came. */
  readonly error?: ErrorCode;
}

export interface TransportOptions {
  readonly clock?: Clock;
  readonly proxy?: ProxyConfig;
  /** Per attempt: the longest wait for response headers, and between body chunks. */
  readonly timeoutMs?: number;
  /** Requests in flight to one host[:port] at once; the rest queue. */
  readonly maxConcurrentPerRegistry?: number;
  readonly retry?: Partial<RetryPolicy>;
  readonly onRequest?: (event: RequestEvent) => void;
  readonly userAgent?: string;
}

export interface TransportRequest {
  readonly method: 'GET' | 'HEAD' | 'POST';
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** PEM bundle trusted in addition to the system's roots, for https. */
  readonly ca?: string | undefined;
  /** Longer answers fail with ERR_REGISTRY_PROTOCOL. */
  readonly maxBodyBytes?: number;
  readonly signal?: AbortSignal | undefined;
  /** At most this many attempts (below the policy's): 1 asks once, as a probe does. */
  readonly maxAttempts?: number;
}

export interface TransportResponse {
  readonly status: number;
  /** Lowercase names, as undici gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly attempts: number;
  /** The Retry-After of this answer, in ms from when it came, if it had a valid one. */
  readonly retryAfterMs?: number;
}

interface Failure {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly cause: Error;
}

type Outcome =
  | { readonly response: TransportResponse; readonly failure?: undefined }
  | { readonly failure: Failure; readonly response?: undefined };

export class Transport {
  readonly #clock: Clock;
  readonly #proxy: ProxyConfig | undefined;
  readonly #timeoutMs: number;
  readonly #limit: number;
  readonly #policy: RetryPolicy;
  readonly #onRequest: ((event: RequestEvent) => void) | undefined;
  readonly #userAgent: string;
  readonly #dispatchers = new Map<string, Dispatcher>();
  readonly #semaphores = new Map<string, Semaphore>();
  /** Per host: until when (transport clock, ms) its last 429/503 asked not to be asked again. */
  readonly #pausedUntil = new Map<string, number>();

  constructor(options: TransportOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#proxy = options.proxy;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#limit = options.maxConcurrentPerRegistry ?? DEFAULT_CONCURRENCY_PER_REGISTRY;
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#onRequest = options.onRequest;
    this.#userAgent = options.userAgent ?? 'prepull';
  }

  /**
   * Sends a request, retrying 429, 5xx (but 501, 505) and connection failures within the retry
   * policy. Resolves with the last answer whatever its status; rejects with ERR_REGISTRY_
   * UNREACHABLE, _TLS or _PROTOCOL when no usable answer came, ERR_ABORTED or
   * ERR_DEADLINE_EXCEEDED when the signal ended it.
   */
  async send(req: TransportRequest): Promise<TransportResponse> {
    const start = this.#clock.now();
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(req, attempt);
      const delay = this.#retryDelay(outcome, attempt, start, req.maxAttempts);
      if (delay === undefined) {
        if (outcome.failure) throw failureError(req.url, outcome.failure, attempt);
        return outcome.response;
      }
      try {
        await this.#clock.sleep(delay, req.signal);
      } catch (error) {
        throw abortError(req.signal, req.url.host, error);
      }
    }
  }

  /**
   * How long `host` (URL host, with port) asked, in the Retry-After of its latest 429 or 503, not
   * to be asked again: ms from now, undefined when it asked nothing or that time has passed. A
   * successful answer from the host ends it. Pulls the runtime makes do not pass the header on,
   * so the engine reads the registry's wish here to space its pull retries.
   */
  retryAfterMs(host: string): number | undefined {
    const until = this.#pausedUntil.get(host);
    if (until === undefined) return undefined;
    const left = until - this.#clock.now();
    if (left > 0) return left;
    this.#pausedUntil.delete(host);
    return undefined;
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    const dispatchers = [...this.#dispatchers.values()];
    this.#dispatchers.clear();
    await Promise.all(dispatchers.map((d) => d.close()));
  }

  async #attempt(req: TransportRequest, attempt: number): Promise<Outcome> {
    const host = req.url.host;
    let release: () => void;
    try {
      release = await this.#semaphore(host).acquire(req.signal);
    } catch (error) {
      throw abortError(req.signal, host, error);
    }
    const began = this.#clock.now();
    const event = { registry: host, method: req.method, path: req.url.pathname, attempt };
    try {
      const response = await this.#dispatch(req, attempt);
      this.#remember(host, response);
      this.#emit({ ...event, status: response.status, durationMs: this.#clock.now() - began });
      return { response };
    } catch (error) {
      if (req.signal?.aborted === true) throw abortError(req.signal, host, error);
      const failure = classifyFailure(error);
      if (failure === undefined) throw error;
      this.#emit({ ...event, error: failure.code, durationMs: this.#clock.now() - began });
      return { failure };
    } finally {
      release();
    }
  }

  async #dispatch(req: TransportRequest, attempt: number): Promise<TransportResponse> {
    const http = await loadUndici();
    const res = await http.request(req.url, {
      method: req.method,
      headers: { 'user-agent': this.#userAgent, ...req.headers },
      ...(req.body === undefined ? {} : { body: req.body }),
      dispatcher: this.#dispatcher(http, req.url, req.ca),
      // undici closes the connection after every HEAD, in case a broken server sends a body;
      // registries answer HEADs properly, and a new TLS handshake per digest check would cost
      // more than the check itself.
      ...(req.method === 'HEAD' ? { reset: false } : {}),
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
      ...(req.signal === undefined ? {} : { signal: req.signal }),
    });
    let body: Buffer;
    if (req.method === 'HEAD') {
      await res.body.dump();
      body = Buffer.alloc(0);
    } else {
      const limit = req.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
      const read = await readLimited(res.body, limit);
      if (read === undefined) {
        throw new PrepullError(
          'ERR_REGISTRY_PROTOCOL',
          `${req.method} ${req.url.host}${req.url.pathname} answered more than ${limit} bytes, ` +
            'far more than a manifest or token can be: check that the URL is a registry',
        );
      }
      body = read;
    }
    const retryAfterMs = parseRetryAfter(
      headerValue(res.headers, 'retry-after'),
      this.#clock.now(),
    );
    return {
      status: res.statusCode,
      headers: res.headers,
      body,
      attempts: attempt,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }

  #remember(host: string, response: TransportResponse): void {
    if (
      (response.status === 429 || response.status === 503) &&
      response.retryAfterMs !== undefined
    ) {
      const until = this.#clock.now() + response.retryAfterMs;
      this.#pausedUntil.set(host, Math.max(until, this.#pausedUntil.get(host) ?? 0));
    } else if (response.status >= 200 && response.status < 300) {
      this.#pausedUntil.delete(host);
    }
  }

  // undefined: do not retry.
  #retryDelay(
    outcome: Outcome,
    attempt: number,
    start: number,
    maxAttempts: number | undefined,
  ): number | undefined {
    if (attempt >= Math.min(this.#policy.maxAttempts, maxAttempts ?? Infinity)) return undefined;
    let delay: number;
    if (outcome.failure) {
      if (outcome.failure.code !== 'ERR_REGISTRY_UNREACHABLE') return undefined;
      delay = backoffDelay(attempt, this.#policy, this.#clock.random());
    } else {
      if (!isRetryableStatus(outcome.response.status)) return undefined;
      const backoff = backoffDelay(attempt, this.#policy, this.#clock.random());
      delay = Math.max(outcome.response.retryAfterMs ?? 0, backoff);
    }
    const elapsed = this.#clock.now() - start;
    return elapsed + delay > this.#policy.budgetMs ? undefined : delay;
  }

  #semaphore(host: string): Semaphore {
    let semaphore = this.#semaphores.get(host);
    if (semaphore === undefined) {
      semaphore = new Semaphore(this.#limit);
      this.#semaphores.set(host, semaphore);
    }
    return semaphore;
  }

  // One dispatcher per (proxy, CA bundle); each keeps a keep-alive pool per origin.
  #dispatcher(http: Undici, url: URL, ca: string | undefined): Dispatcher {
    const proxy = proxyFor(url, this.#proxy);
    const caKey = ca === undefined ? '' : createHash('sha256').update(ca).digest('hex');
    const key = `${proxy ?? ''}\u0000${caKey}`;
    let dispatcher = this.#dispatchers.get(key);
    if (dispatcher === undefined) {
      // A registry's CA is added to the system's roots, as containerd's hosts.toml `ca` is.
      const trust = ca === undefined ? {} : { ca: [...getCACertificates('default'), ca] };
      const connect = { ...trust, timeout: Math.min(CONNECT_TIMEOUT_MS, this.#timeoutMs) };
      const pool = { connections: this.#limit, keepAliveTimeout: KEEP_ALIVE_MS };
      dispatcher =
        proxy === undefined
          ? new http.Agent({ ...pool, connect })
          : new http.ProxyAgent({
              ...pool,
              uri: proxy,
              requestTls: connect,
              proxyTls: { timeout: connect.timeout },
            });
      this.#dispatchers.set(key, dispatcher);
    }
    return dispatcher;
  }

  #emit(event: RequestEvent): void {
    try {
      this.#onRequest?.(event);
    } catch {
      // An observer's bug must not fail a registry request.
    }
  }
}

/** 429 and 5xx may pass; 501 (not implemented) and 505 (version) will not. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505);
}

/** Full jitter: a random wait up to min(max, base·2^(attempt-1)). */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random * ceiling);
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (/^[+-]?\d/.test(text)) return undefined; // a negative or fractional count is no date either
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The error for an operation its signal ended: a timeout signal means a deadline. */
export function abortError(signal: AbortSignal | undefined, what: string, cause: unknown): Error {
  if (signal?.aborted !== true)
    return cause instanceof Error ? cause : new Error('failed', { cause });
  const reason: unknown = signal.reason;
  const timeout = isErrorLike(reason) && reason.name === 'TimeoutError';
  return timeout
    ? new PrepullError('ERR_DEADLINE_EXCEEDED', `${what}: the deadline passed before it finished`, {
        cause: reason,
      })
    : new PrepullError('ERR_ABORTED', `${what}: cancelled`, { cause: reason });
}

async function readLimited(
  body: AsyncIterable<Buffer> & { destroy(): unknown },
  limit: number,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// OpenSSL's verification results and Node's TLS checks: the certificate is the problem.
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
]);

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/** Maps what undici or the socket threw to a code; undefined for errors that are bugs. */
export function classifyFailure(error: unknown): Failure | undefined {
  if (error instanceof PrepullError) {
    return { code: error.code, detail: error.message, cause: error };
  }
  // Duck-typed: errors from Node's own modules may come from another realm (Jest's VM).
  if (!isErrorLike(error)) return undefined;
  const code = error.code;
  if (typeof code !== 'string') return undefined;
  // OpenSSL's messages carry file names and error numbers; its `reason` is the readable part.
  const reason = error.reason;
  const text = typeof reason === 'string' && reason !== '' ? reason : error.message;
  const detail = redactProxy(text).split('\n')[0] ?? '';
  // A plain copy: the original may reference sockets and request options.
  const cause = Object.assign(new Error(detail), { code });
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) {
    // Node appends advice about its own flags after a ';', which is not what prepull's users do.
    const what = detail.split(';')[0] ?? detail;
    return { code: 'ERR_REGISTRY_TLS', detail: `${code}: ${what}`, cause };
  }
  if (code.startsWith('HPE_')) {
    return { code: 'ERR_REGISTRY_PROTOCOL', detail: `not an HTTP answer (${detail})`, cause };
  }
  if (TIMEOUT_CODES.has(code))
    return { code: 'ERR_REGISTRY_UNREACHABLE', detail: `timed out (${code})`, cause };
  if (code.startsWith('UND_ERR_INVALID') || code === 'UND_ERR_NOT_SUPPORTED') return undefined;
  // errno codes (ECONNREFUSED, ECONNRESET, ENOTFOUND, EAI_AGAIN, EHOSTUNREACH, EPIPE …) and
  // undici's socket, proxy and closed-connection errors.
  return { code: 'ERR_REGISTRY_UNREACHABLE', detail, cause };
}

interface ErrorLike {
  readonly message: string;
  readonly name?: unknown;
  readonly code?: unknown;
  readonly reason?: unknown;
}

export function isErrorLike(value: unknown): value is ErrorLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

function failureError(url: URL, failure: Failure, attempts: number): PrepullError {
  if (failure.cause instanceof PrepullError) return failure.cause;
  const host = url.host;
  const tries = attempts === 1 ? '' : ` (${attempts} attempts)`;
  if (failure.code === 'ERR_REGISTRY_TLS') {
    const plain = /WRONG_VERSION_NUMBER|wrong version number/i.test(failure.detail)
      ? ' It does not seem to speak TLS at all: if it is a plain-HTTP registry on a trusted ' +
        'network, configure it as insecure.'
      : " Configure the registry's CA bundle (the registry's or mirror's `ca`), or fix its certificate.";
    return new PrepullError(
      'ERR_REGISTRY_TLS',
      `TLS connection to ${host} failed: ${failure.detail}.${plain}`,
      { cause: failure.cause },
    );
  }
  if (failure.code === 'ERR_REGISTRY_PROTOCOL') {
    return new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${host} answered something that is not HTTP: ${failure.detail}. Check the host, port and scheme.`,
      { cause: failure.cause },
    );
  }
  return new PrepullError(
    failure.code,
    `could not reach ${host}${tries}: ${failure.detail}. Check the host and port, network ` +
      'policy, proxies (HTTPS_PROXY, NO_PROXY) and mirrors; prepull will retry.',
    { cause: failure.cause },
  );
}
