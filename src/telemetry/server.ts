// The HTTP endpoint for Prometheus and probes: /metrics, /healthz (the process serves) and
// /readyz (the caller's readiness check, e.g. runtime reachable and, in the agent, caches synced;
// in the controller, caches synced).
import { type Server, createServer } from 'node:http';

/** What /metrics serves: the agent's Metrics or the controller's PrometheusControllerMetrics. */
export interface MetricsSource {
  render(): Promise<string>;
  readonly contentType: string;
}

export interface TelemetryServer {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

export async function startTelemetryServer(
  metrics: MetricsSource,
  address: { host: string; port: number },
  ready: () => Promise<string | undefined>,
): Promise<TelemetryServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      answer(405, 'method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      metrics.render().then(
        (text) => {
          answer(200, text, metrics.contentType);
        },
        (error: unknown) => {
          answer(500, `${String(error)}\n`);
        },
      );
    } else if (path === '/healthz') {
      answer(200, 'ok\n');
    } else if (path === '/readyz') {
      ready().then(
        (problem) => {
          if (problem === undefined) answer(200, 'ok\n');
          else answer(503, `${problem}\n`);
        },
        (error: unknown) => {
          answer(503, `${String(error)}\n`);
        },
      );
    } else {
      answer(404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound !== null ? bound.port : address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
