// The transport's retry and backoff behaviour, asserted as exact sleep sequences with a manual
// clock, against real HTTP servers on loopback.
import { afterEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import type { ServerResponse } from 'node:http';
import {
  closedPort,
  type FakeHandler,
  FakeHttpServer,
  json,
} from '../../test/harness/fake-http.ts';
import {
  backoffDelay,
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  isRetryableStatus,
  parseRetryAfter,
  type RequestEvent,
  Transport,
  type TransportOptions,
} from './transport.ts';

const EPOCH = Date.parse('2026-03-01T12:00:00Z');

/** Runs `promise` to completion, waking the manual clock's sleepers whenever it waits. */
async function drive<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  while (!state.settled) {
    if (clock.waiting > 0) await clock.next();
    else await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return promise;
}

const servers: FakeHttpServer[] = [];
const transports: Transport[] = [];

async function server(handler: FakeHandler): Promise<FakeHttpServer> {
  const s = await FakeHttpServer.start(handler);
  servers.push(s);
  return s;
}

function transport(options: TransportOptions): Transport {
  const t = new Transport(options);
  transports.push(t);
  return t;
}

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Answers the given statuses in turn (the last one forever), with optional headers. */
function sequence(answers: readonly [number, Record<string, string>?][]): FakeHandler {
  let i = 0;
  return (_req, res) => {
    const [status, headers = {}] = answers[Math.min(i++, answers.length - 1)] ?? [500];
    res.writeHead(status, headers).end();
  };
}

describe('Transport retries', () => {
  it('waits as long as a 429 Retry-After in seconds says, then succeeds', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[429, { 'retry-after': '2' }], [200]]));
    const events: RequestEvent[] = [];
    const t = transport({ clock, onRequest: (e) => events.push(e) });
    const res = await drive(
      clock,
      t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/a/manifests/1`) }),
    );
    expect(res.status).toBe(200);
    expect(res.attempts).toBe(2);
    expect(clock.sleeps).toEqual([2000]);
    expect(events.map((e) => [e.attempt, e.status])).toEqual([
      [1, 429],
      [2, 200],
    ]);
    expect(events[0]).toMatchObject({
      registry: s.host,
      method: 'HEAD',
      path: '/v2/a/manifests/1',
    });
  });

  it('waits until a 429 Retry-After HTTP date', async () => {
    const clock = new ManualClock(EPOCH);
    const date = new Date(EPOCH + 3000).toUTCString();
    const s = await server(sequence([[429, { 'retry-after': date }], [200]]));
    const t = transport({ clock });
    const res = await drive(clock, t.send({ method: 'GET', url: new URL(`${s.url}/v2/`) }));
    expect(res.status).toBe(200);
    expect(clock.sleeps).toEqual([3000]);
  });

  it('backs off with full jitter on 503 twice, then succeeds', async () => {
    const clock = new ManualClock(EPOCH, [0.5, 0.25]);
    const s = await server(sequence([[503], [503], [200]]));
    const t = transport({ clock });
    const res = await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(res.status).toBe(200);
    expect(res.attempts).toBe(3);
    // ceilings 250 then 500 ms; random 0.5 then 0.25
    expect(clock.sleeps).toEqual([125, 125]);
    expect(s.requests).toHaveLength(3);
  });

  it('uses the backoff when it is longer than Retry-After', async () => {
    const clock = new ManualClock(EPOCH, [0.9]);
    const s = await server(sequence([[503, { 'retry-after': '0' }], [200]]));
    const t = transport({ clock });
    await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(clock.sleeps).toEqual([225]);
  });

  it('retries refused connections with growing backoff, then fails retryable UNREACHABLE', async () => {
    const clock = new ManualClock(EPOCH);
    const port = await closedPort();
    const events: RequestEvent[] = [];
    const t = transport({ clock, onRequest: (e) => events.push(e) });
    const error = await drive(
      clock,
      t.send({ method: 'HEAD', url: new URL(`http://127.0.0.1:${port}/v2/a/manifests/1`) }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PrepullError);
    expect(error).toMatchObject({ code: 'ERR_REGISTRY_UNREACHABLE', retryable: true });
    expect((error as Error).message).toContain('ECONNREFUSED');
    expect((error as Error).message).toContain('4 attempts');
    expect(clock.sleeps).toEqual([125, 250, 500]);
    expect(events.map((e) => [e.attempt, e.status, e.error])).toEqual([
      [1, undefined, 'ERR_REGISTRY_UNREACHABLE'],
      [2, undefined, 'ERR_REGISTRY_UNREACHABLE'],
      [3, undefined, 'ERR_REGISTRY_UNREACHABLE'],
      [4, undefined, 'ERR_REGISTRY_UNREACHABLE'],
    ]);
  });

  it.each([400, 401, 403, 404, 501])('does not retry %i', async (status) => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[status]]));
    const t = transport({ clock });
    const res = await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(res.status).toBe(status);
    expect(res.attempts).toBe(1);
    expect(clock.sleeps).toEqual([]);
    expect(s.requests).toHaveLength(1);
  });

  it('returns the last 5xx once the attempts are used up', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[502]]));
    const t = transport({ clock, retry: { maxAttempts: 3 } });
    const res = await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(res.status).toBe(502);
    expect(res.attempts).toBe(3);
    expect(clock.sleeps).toEqual([125, 250]);
  });

  it('does not wait past its budget: a long Retry-After ends the retries at once', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[429, { 'retry-after': '3600' }], [200]]));
    const t = transport({ clock });
    const res = await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(res.status).toBe(429);
    expect(res.retryAfterMs).toBe(3_600_000);
    expect(clock.sleeps).toEqual([]);
  });

  it('remembers the Retry-After of a 429 per host until it passes or the host answers 2xx', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[429, { 'retry-after': '3600' }], [200]]));
    const t = transport({ clock });
    expect(t.retryAfterMs(s.host)).toBeUndefined();
    await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(t.retryAfterMs(s.host)).toBe(3_600_000);
    expect(t.retryAfterMs('other.example:5000')).toBeUndefined();
    await clock.advance(600_000);
    expect(t.retryAfterMs(s.host)).toBe(3_000_000);
    // The registry answers again: its wish no longer holds.
    await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(t.retryAfterMs(s.host)).toBeUndefined();
  });

  it('forgets a Retry-After once its time has passed, and never keeps one from a 500', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(
      sequence([
        [503, { 'retry-after': '5' }],
        [500, { 'retry-after': '9' }],
      ]),
    );
    const t = transport({ clock, retry: { maxAttempts: 1 } });
    await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(t.retryAfterMs(s.host)).toBe(5000);
    await clock.advance(5000);
    expect(t.retryAfterMs(s.host)).toBeUndefined();
    await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    expect(t.retryAfterMs(s.host)).toBeUndefined();
  });

  it('asks once when the request says maxAttempts 1 (a probe), whatever the policy', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[429, { 'retry-after': '2' }], [200]]));
    const t = transport({ clock });
    const res = await drive(
      clock,
      t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`), maxAttempts: 1 }),
    );
    expect(res.status).toBe(429);
    expect(res.attempts).toBe(1);
    expect(clock.sleeps).toEqual([]);
  });

  it('stops retrying when the next wait would pass the budget', async () => {
    const clock = new ManualClock(EPOCH, [1]);
    const s = await server(sequence([[503]]));
    const t = transport({
      clock,
      retry: { maxAttempts: 10, baseDelayMs: 1000, maxDelayMs: 60_000, budgetMs: 3500 },
    });
    const res = await drive(clock, t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }));
    // waits 1000, 2000 (3000 so far); the next, 4000, would end at 7000 > 3500
    expect(clock.sleeps).toEqual([1000, 2000]);
    expect(res.attempts).toBe(3);
  });

  it('ends a backoff wait when the signal aborts', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(sequence([[503]]));
    const t = transport({ clock });
    const controller = new AbortController();
    const pending = t.send({
      method: 'HEAD',
      url: new URL(`${s.url}/v2/x`),
      signal: controller.signal,
    });
    while (clock.waiting === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('reports a timeout signal as a deadline', async () => {
    const s = await server(() => undefined); // never answers
    const t = transport({});
    await expect(
      t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`), signal: AbortSignal.timeout(50) }),
    ).rejects.toMatchObject({ code: 'ERR_DEADLINE_EXCEEDED', retryable: true });
  });

  it('times out an attempt whose answer does not come, as unreachable', async () => {
    const clock = new ManualClock(EPOCH);
    const s = await server(() => undefined);
    const t = transport({ clock, timeoutMs: 100, retry: { maxAttempts: 1 } });
    await expect(t.send({ method: 'GET', url: new URL(`${s.url}/v2/`) })).rejects.toMatchObject({
      code: 'ERR_REGISTRY_UNREACHABLE',
      message: expect.stringContaining('timed out'),
    });
  });

  it('refuses answers larger than the limit', async () => {
    const s = await server((_, res: ServerResponse) => {
      json(res, 200, { big: 'x'.repeat(5000) });
    });
    const t = transport({});
    await expect(
      t.send({ method: 'GET', url: new URL(`${s.url}/v2/`), maxBodyBytes: 1000 }),
    ).rejects.toMatchObject({ code: 'ERR_REGISTRY_PROTOCOL' });
  });

  it('limits requests in flight per registry and queues the rest', async () => {
    const s = await server(async (_, res: ServerResponse) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      res.writeHead(200).end();
    });
    const t = transport({ maxConcurrentPerRegistry: 2 });
    const all = Array.from({ length: 6 }, () =>
      t.send({ method: 'HEAD', url: new URL(`${s.url}/v2/x`) }),
    );
    const answers = await Promise.all(all);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(s.maxInFlight).toBe(2);
  });

  it('keeps connections alive between requests, HEADs included', async () => {
    const s = await server(sequence([[200]]));
    const t = transport({});
    for (let i = 0; i < 5; i++) {
      await t.send({ method: i % 2 === 0 ? 'HEAD' : 'GET', url: new URL(`${s.url}/v2/`) });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(new Set(s.requests.map((r) => r.remotePort)).size).toBe(1);
  });
});

describe('proxies', () => {
  it('sends http:// requests for a non-local host through HTTP_PROXY', async () => {
    const proxy = await server(sequence([[200, { 'docker-content-digest': 'sha256:x' }]]));
    const t = transport({ proxy: { httpProxy: proxy.url } });
    const res = await t.send({
      method: 'HEAD',
      url: new URL('http://registry.example.test/v2/a/manifests/1'),
    });
    expect(res.status).toBe(200);
    expect(proxy.requests[0]?.url).toBe('http://registry.example.test/v2/a/manifests/1');
  });

  it('never proxies loopback registries', async () => {
    const proxy = await server(sequence([[599]]));
    const target = await server(sequence([[200]]));
    const t = transport({ proxy: { httpProxy: proxy.url, httpsProxy: proxy.url } });
    const res = await t.send({ method: 'HEAD', url: new URL(`${target.url}/v2/`) });
    expect(res.status).toBe(200);
    expect(proxy.requests).toHaveLength(0);
  });
});

describe('retry arithmetic', () => {
  it('caps the backoff ceiling', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, 1))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffDelay(3, policy, 0)).toBe(0);
  });

  it('reads Retry-After as seconds or a date, and ignores anything else', () => {
    expect(parseRetryAfter('120', EPOCH)).toBe(120_000);
    expect(parseRetryAfter(new Date(EPOCH + 5000).toUTCString(), EPOCH)).toBe(5000);
    expect(parseRetryAfter(new Date(EPOCH - 5000).toUTCString(), EPOCH)).toBe(0);
    expect(parseRetryAfter('soon', EPOCH)).toBeUndefined();
    expect(parseRetryAfter('-1', EPOCH)).toBeUndefined();
    expect(parseRetryAfter(undefined, EPOCH)).toBeUndefined();
  });

  it('retries 429 and 5xx but 501 and 505', () => {
    expect([429, 500, 502, 503, 504, 599].every(isRetryableStatus)).toBe(true);
    expect([200, 400, 401, 403, 404, 408, 501, 505].some(isRetryableStatus)).toBe(false);
  });

  it('classifies socket and TLS failures', () => {
    const err = (code: string, message = code): Error =>
      Object.assign(new Error(message), { code });
    expect(classifyFailure(err('ECONNRESET'))?.code).toBe('ERR_REGISTRY_UNREACHABLE');
    expect(classifyFailure(err('ENOTFOUND'))?.code).toBe('ERR_REGISTRY_UNREACHABLE');
    expect(classifyFailure(err('UND_ERR_SOCKET'))?.code).toBe('ERR_REGISTRY_UNREACHABLE');
    expect(classifyFailure(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))?.code).toBe('ERR_REGISTRY_TLS');
    expect(classifyFailure(err('SELF_SIGNED_CERT_IN_CHAIN'))?.code).toBe('ERR_REGISTRY_TLS');
    expect(classifyFailure(err('ERR_TLS_CERT_ALTNAME_INVALID'))?.code).toBe('ERR_REGISTRY_TLS');
    expect(classifyFailure(err('ERR_SSL_WRONG_VERSION_NUMBER'))?.code).toBe('ERR_REGISTRY_TLS');
    expect(classifyFailure(err('HPE_INVALID_CONSTANT'))?.code).toBe('ERR_REGISTRY_PROTOCOL');
    expect(classifyFailure(err('UND_ERR_INVALID_ARG'))).toBeUndefined();
    expect(classifyFailure(new TypeError('bug'))).toBeUndefined();
  });

  it('keeps proxy credentials out of failure details', () => {
    const error = Object.assign(new Error('connect to http://user:pa55@proxy:3128 failed'), {
      code: 'UND_ERR_PRX_CONN',
    });
    const failure = classifyFailure(error);
    expect(failure?.detail).not.toContain('pa55');
    expect(failure?.cause.message).not.toContain('pa55');
  });
});
