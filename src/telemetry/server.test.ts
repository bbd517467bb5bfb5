import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { Metrics } from './metrics.ts';
import { type TelemetryServer, isLocalPeer, startTelemetryServer } from './server.ts';

/** An address of this machine that is not loopback, to ask from as a remote peer would. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address;

/** GET on 127.0.0.1:port, sent from `from` (the source address the server sees). */
function getFrom(
  port: number,
  path: string,
  from: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, localAddress: from }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text });
      });
    })
      .on('error', reject)
      .end();
  });
}

describe('telemetry server', () => {
  let server: TelemetryServer;
  let problem: string | undefined = 'runtime not reachable yet';
  const metrics = new Metrics();

  beforeAll(async () => {
    metrics.imagesRequired.set(3);
    server = await startTelemetryServer(metrics, { host: '0.0.0.0', port: 0 }, () =>
      Promise.resolve(problem),
    );
  });

  afterAll(async () => {
    await server.close();
  });

  const get = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${server.port}${path}`);

  it('serves metrics in the Prometheus text format', async () => {
    const response = await get('/metrics');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    expect(await response.text()).toContain('prepull_images_required 3');
  });

  it('answers liveness always and readiness from the check, with the reason to a local caller', async () => {
    problem = 'runtime not reachable yet';
    expect((await get('/healthz')).status).toBe(200);
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('runtime not reachable yet\n');
    expect(await (await get('/readyz?verbose')).text()).toBe('runtime not reachable yet\n');
    problem = undefined;
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/nope')).status).toBe(404);
  });

  (outside === undefined ? it.skip : it)(
    'tells a caller from another address only that it is not ready, ?verbose or not',
    async () => {
      problem = 'runtime not reachable: connect ENOENT /run/containerd/containerd.sock';
      for (const path of ['/readyz', '/readyz?verbose']) {
        expect(await getFrom(server.port, path, outside!)).toEqual({
          status: 503,
          text: 'not ready\n',
        });
      }
      problem = undefined;
      expect(await getFrom(server.port, '/readyz', outside!)).toEqual({
        status: 200,
        text: 'ok\n',
      });
    },
  );
});

describe('a /metrics that fails', () => {
  it('answers 500 with the error locally, and without it to anyone else', async () => {
    const failing = {
      contentType: 'text/plain',
      render: () => Promise.reject(new Error('cannot read /run/secret/thing')),
    };
    const server = await startTelemetryServer(failing, { host: '0.0.0.0', port: 0 }, () =>
      Promise.resolve(undefined),
    );
    try {
      expect(await getFrom(server.port, '/metrics', '127.0.0.1')).toEqual({
        status: 500,
        text: 'Error: cannot read /run/secret/thing\n',
      });
      if (outside !== undefined) {
        expect(await getFrom(server.port, '/metrics', outside)).toEqual({
          status: 500,
          text: 'metrics unavailable\n',
        });
      }
    } finally {
      await server.close();
    }
  });
});

describe('isLocalPeer', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.9.9.9', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['10.1.2.3', true], // the Pod asking itself through its Pod IP
    ['::ffff:10.1.2.3', true],
    ['10.1.2.4', false],
    ['10.0.0.1', false], // kubelet's probes come from the node
    ['fd00::1', false],
    [undefined, false],
  ])('%s is local: %s', (remote, local) => {
    expect(isLocalPeer({ remoteAddress: remote, localAddress: '10.1.2.3' })).toBe(local);
  });
});
