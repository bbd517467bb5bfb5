import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrometheusControllerMetrics } from './controller-metrics.ts';
import { Metrics } from './metrics.ts';
import { type TelemetryServer, startTelemetryServer } from './server.ts';

describe('the controller’s metrics', () => {
  it('count what the controller reports, every series present from the start', async () => {
    const metrics = new PrometheusControllerMetrics();
    let text = await metrics.render();
    expect(text).toContain('prepull_controller_status_writes_total{result="conflict"} 0');
    expect(text).toContain('prepull_controller_node_patches_total{kind="taint",result="error"} 0');
    expect(text).toContain('prepull_controller_leader 0');
    expect(text).toContain('prepull_controller_leader_transitions_total{transition="started"} 0');
    metrics.statusWrites('ok');
    metrics.statusWrites('ok');
    metrics.nodePatches('label', 'ok');
    metrics.admitted(7);
    metrics.prePulls(3);
    metrics.watchRestart('nodes');
    metrics.leading(true);
    text = await metrics.render();
    expect(text).toContain('prepull_controller_status_writes_total{result="ok"} 2');
    expect(text).toContain('prepull_controller_node_patches_total{kind="label",result="ok"} 1');
    expect(text).toContain('prepull_controller_admitted_nodes 7');
    expect(text).toContain('prepull_controller_prepulls 3');
    expect(text).toContain('prepull_controller_watch_restarts_total{resource="nodes"} 1');
    expect(text).toContain('prepull_controller_leader 1');
    metrics.leading(false);
    text = await metrics.render();
    expect(text).toContain('prepull_controller_leader 0');
    expect(text).toContain('prepull_controller_leader_transitions_total{transition="started"} 1');
    expect(text).toContain('prepull_controller_leader_transitions_total{transition="stopped"} 1');
    // Only the controller's names (and every registry's process metrics), on a registry of its
    // own.
    const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] ?? '');
    const prepull = names.filter((n) => n.startsWith('prepull_'));
    expect(prepull.every((n) => n.startsWith('prepull_controller_'))).toBe(true);
    expect(names).toContain('process_cpu_seconds_total');
    expect(await new Metrics().render()).not.toContain('prepull_controller_');
  });

  it('says what runs in prepull_build_info: the controller, with no runtime', async () => {
    const metrics = new PrometheusControllerMetrics({ version: '1.2.3', revision: 'abc' });
    expect(await metrics.render()).toContain(
      `prepull_build_info{version="1.2.3",revision="abc",nodejs_version="${process.version}",command="controller",runtime=""} 1`,
    );
  });
});

describe('the telemetry server, with the controller’s metrics', () => {
  let server: TelemetryServer;
  let synced = false;
  const metrics = new PrometheusControllerMetrics();

  beforeAll(async () => {
    server = await startTelemetryServer(metrics, { host: '127.0.0.1', port: 0 }, () =>
      Promise.resolve(synced ? undefined : 'not synced'),
    );
  });

  afterAll(async () => {
    await server.close();
  });

  it('serves them at /metrics, with /healthz and /readyz', async () => {
    const get = (path: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${server.port}${path}`);
    const response = await get('/metrics');
    expect(response.headers.get('content-type')).toContain('text/plain');
    expect(await response.text()).toContain('prepull_controller_leader 0');
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(503);
    synced = true;
    expect((await get('/readyz')).status).toBe(200);
  });
});
