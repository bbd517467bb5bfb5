// The fault proxy itself, in front of a scripted loopback HTTP server: each fault does what the
// fault suite says it does (and nothing else), scopes and `times` hold, and clearing a fault
// lets requests through again.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { type IncomingHttpHeaders, get } from 'node:http';
import { FakeHttpServer } from './fake-http.ts';
import { FaultProxy } from './fault-proxy.ts';

const BLOB = Buffer.alloc(64 * 1024, 'x');
for (let i = 0; i < BLOB.length; i++) BLOB[i] = (i * 7) % 251;
const BLOB_PATH = '/v2/repo/blobs/sha256:aaaa';
const MANIFEST = Buffer.from('{"schemaVersion":2}');
const MANIFEST_PATH = '/v2/repo/manifests/v1';

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The error that ended the answer, if it did not end cleanly. */
  error?: string;
  /** Whether the answer ended cleanly. */
  complete: boolean;
}

/**
 * GET `path` through the proxy; resolves when the answer ends (cleanly or not), or after
 * `settleMs` with what had arrived then (for a hang).
 */
function fetchVia(
  proxy: FaultProxy,
  path: string,
  options: { headers?: Record<string, string>; settleMs?: number; method?: string } = {},
): Promise<Got> {
  return new Promise((resolve, reject) => {
    let started = false;
    let socketError: string | undefined;
    const req = get(
      `http://${proxy.host}${path}`,
      { headers: options.headers ?? {}, method: options.method ?? 'GET', agent: false },
      (res) => {
        started = true;
        const chunks: Buffer[] = [];
        let settled = false;
        const finish = (error?: string): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          req.destroy();
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            complete: error === undefined && res.complete,
            ...(error === undefined ? {} : { error }),
          });
        };
        const timer = setTimeout(() => {
          finish('still open');
        }, options.settleMs ?? 10_000);
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          finish();
        });
        // How the connection ended (a reset or a clean close) is known a moment later.
        res.on('aborted', () => {
          setTimeout(() => {
            finish(socketError ?? 'aborted');
          }, 50);
        });
        res.on('error', (error: NodeJS.ErrnoException) => {
          socketError ??= error.message;
        });
      },
    );
    // Once the answer has begun, its own events tell how it ended.
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!started) reject(error);
      // The socket's own error ("read ECONNRESET") comes first; a premature end is "aborted".
      socketError ??= error.message;
    });
  });
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('FaultProxy', () => {
  let server: FakeHttpServer;
  let proxy: FaultProxy;

  beforeAll(async () => {
    server = await FakeHttpServer.start((req, res) => {
      const path = req.url.split('?')[0];
      const body = path === BLOB_PATH ? BLOB : path === MANIFEST_PATH ? MANIFEST : undefined;
      if (body === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        'content-length': body.length,
        'docker-content-digest': `sha256:${sha(body)}`,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    proxy = await FaultProxy.start(server.host);
  });

  afterAll(async () => {
    await proxy.stop();
    await server.close();
  });

  beforeEach(() => {
    proxy.clear();
  });

  it('passes requests and answers through untouched when no fault is in force', async () => {
    const got = await fetchVia(proxy, BLOB_PATH, { headers: { authorization: 'Basic eDp5' } });
    expect(got).toMatchObject({ status: 200, complete: true });
    expect(got.body.equals(BLOB)).toBe(true);
    expect(got.headers['docker-content-digest']).toBe(`sha256:${sha(BLOB)}`);
    const seen = server.requests.at(-1)!;
    expect(seen.headers.authorization).toBe('Basic eDp5');
    expect(seen.headers.host).toBe(proxy.host);
    expect((await fetchVia(proxy, '/v2/nothing/here')).status).toBe(404);
  });

  it('answers 503 in its scope only, and counts what it saw and faulted', async () => {
    const before = proxy.counts('503');
    proxy.inject({ fault: { mode: '503' }, scope: 'manifests' });
    const manifest = await fetchVia(proxy, MANIFEST_PATH);
    expect(manifest.status).toBe(503);
    expect(JSON.parse(manifest.body.toString())).toMatchObject({
      errors: [{ code: 'UNAVAILABLE' }],
    });
    expect((await fetchVia(proxy, MANIFEST_PATH, { method: 'HEAD' })).status).toBe(503);
    expect((await fetchVia(proxy, BLOB_PATH)).status).toBe(200);
    const after = proxy.counts('503');
    expect({ seen: after.seen - before.seen, faulted: after.faulted - before.faulted }).toEqual({
      seen: 2,
      faulted: 2,
    });
    proxy.clear();
    expect((await fetchVia(proxy, MANIFEST_PATH)).status).toBe(200);
  });

  it('answers 429 with Retry-After to the first K requests, then ends by itself', async () => {
    proxy.inject({ fault: { mode: '429', retryAfterSeconds: 7 }, times: 2 });
    const first = await fetchVia(proxy, BLOB_PATH);
    expect(first.status).toBe(429);
    expect(first.headers['retry-after']).toBe('7');
    expect((await fetchVia(proxy, MANIFEST_PATH)).status).toBe(429);
    expect(proxy.mode).toBeUndefined();
    expect((await fetchVia(proxy, MANIFEST_PATH)).status).toBe(200);
  });

  it('hangs mid-blob: headers and part of the body, then nothing, the connection open', async () => {
    proxy.inject({ fault: { mode: 'hang', afterBytes: 1000 } });
    const got = await fetchVia(proxy, BLOB_PATH, { settleMs: 1000 });
    expect(got).toMatchObject({ status: 200, error: 'still open', complete: false });
    expect(got.headers['content-length']).toBe(String(BLOB.length));
    expect(got.body.equals(BLOB.subarray(0, 1000))).toBe(true);
    // Manifests are out of a body fault's default scope.
    expect((await fetchVia(proxy, MANIFEST_PATH)).complete).toBe(true);
  });

  it('resets the connection mid-blob (RST after part of the body)', async () => {
    proxy.inject({ fault: { mode: 'reset', afterBytes: 4096 } });
    const got = await fetchVia(proxy, BLOB_PATH);
    expect(got.status).toBe(200);
    expect(got.complete).toBe(false);
    expect(got.error).toBe('read ECONNRESET');
    expect(got.body.equals(BLOB.subarray(0, 4096))).toBe(true);
  });

  it('truncates a blob: Content-Length promises more, the connection closes early', async () => {
    proxy.inject({ fault: { mode: 'truncate', afterBytes: 5000 }, times: 1 });
    const got = await fetchVia(proxy, BLOB_PATH);
    expect(got.headers['content-length']).toBe(String(BLOB.length));
    // A clean close (FIN), not a reset: the client sees the answer end short.
    expect(got.error).toBe('aborted');
    expect(got.body.equals(BLOB.subarray(0, 5000))).toBe(true);
    // The next request (times: 1) gets the whole blob.
    expect((await fetchVia(proxy, BLOB_PATH)).body.equals(BLOB)).toBe(true);
    expect(proxy.counts('truncate').faulted).toBeGreaterThanOrEqual(1);
  });

  it('serves a blob with the same length and another digest', async () => {
    proxy.inject({ fault: { mode: 'wrong-digest' } });
    const got = await fetchVia(proxy, BLOB_PATH);
    expect(got).toMatchObject({ status: 200, complete: true });
    expect(got.body.length).toBe(BLOB.length);
    expect(sha(got.body)).not.toBe(sha(BLOB));
    expect(got.headers['docker-content-digest']).toBe(`sha256:${sha(BLOB)}`);
    // A HEAD has no body to alter: seen, not faulted.
    const before = proxy.counts('wrong-digest');
    expect((await fetchVia(proxy, BLOB_PATH, { method: 'HEAD' })).status).toBe(200);
    const after = proxy.counts('wrong-digest');
    expect([after.seen - before.seen, after.faulted - before.faulted]).toEqual([1, 0]);
  });

  it('drips a blob at the rate asked, and speeds up once the drip is cleared', async () => {
    // 64 KiB at 32 KiB/s would take 2 s; cleared after 0.5 s, the rest comes at once.
    proxy.inject({ fault: { mode: 'drip', bytesPerSecond: 32 * 1024 } });
    const startedAt = Date.now();
    const pending = fetchVia(proxy, BLOB_PATH);
    await new Promise((resolve) => setTimeout(resolve, 500));
    proxy.clear();
    const got = await pending;
    const tookMs = Date.now() - startedAt;
    expect(got.body.equals(BLOB)).toBe(true);
    expect(tookMs).toBeGreaterThanOrEqual(450);
    expect(tookMs).toBeLessThan(1900);

    // Left in force, it holds the rate: 16 KiB at 16 KiB/s takes about a second.
    proxy.inject({ fault: { mode: 'drip', bytesPerSecond: 16 * 1024 } });
    const t0 = Date.now();
    const slow = fetchVia(proxy, BLOB_PATH, { settleMs: 1000 });
    const partial = await slow;
    expect(partial.error).toBe('still open');
    expect(partial.body.length).toBeGreaterThan(4 * 1024);
    expect(partial.body.length).toBeLessThan(24 * 1024);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it('scopes a fault to the paths a pattern matches', async () => {
    proxy.inject({ fault: { mode: '503' }, scope: /^\/v2\/other\// });
    expect((await fetchVia(proxy, BLOB_PATH)).status).toBe(200);
    expect((await fetchVia(proxy, '/v2/other/manifests/v1')).status).toBe(503);
  });

  it('refuses a fault it cannot play', () => {
    expect(() => {
      proxy.inject({ fault: { mode: 'drip', bytesPerSecond: 0 } });
    }).toThrow(/bytesPerSecond must be positive/);
    expect(() => {
      proxy.inject({ fault: { mode: '503' }, times: 0 });
    }).toThrow(/times must be a positive integer/);
  });
});
