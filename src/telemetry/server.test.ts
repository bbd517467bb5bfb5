import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metrics } from './metrics.ts';
import { type TelemetryServer, startTelemetryServer } from './server.ts';

describe('telemetry server', () => {
  let server: TelemetryServer;
  let problem: string | undefined = 'runtime not reachable yet';
  const metrics = new Metrics();

  beforeAll(async () => {
    metrics.imagesRequired.set(3);
    server = await startTelemetryServer(metrics, { host: '127.0.0.1', port: 0 }, () =>
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

  it('answers liveness always and readiness from the check', async () => {
    expect((await get('/healthz')).status).toBe(200);
    const notReady = await get('/readyz');
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('runtime not reachable yet\n');
    problem = undefined;
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/nope')).status).toBe(404);
  });
});
