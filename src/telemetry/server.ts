// The HTTP endpoint for Prometheus and probes: /metrics, /healthz (the process serves) and
// /readyz (the caller's readiness check, e.g. runtime reachable and, in the agent, caches synced;
// in the controller, caches synced).
//
// Why /readyz is not ready is said in full only to a local caller: the reason can carry socket
// paths and a runtime's error text, which are nobody else's business. Anyone else (kubelet's
// probes, a scraper, another Pod) reads `not ready`; the caller logs the reason as it changes.
import { type Server, createServer } from 'node:http';
import { isIP } from 'node:net';

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

/** The plain answer of a not-ready /readyz to a caller that is not local. */
export const NOT_READY = 'not ready\n';

/**
 * Whether a request comes from this host (or Pod): from a loopback address, or from the very
 * address it arrived at (a process of the same Pod asking through the Pod IP the server is
 * bound to). A remote peer cannot complete a TCP handshake with either as its source.
 */
export function isLocalPeer(socket: {
  readonly remoteAddress?: string | undefined;
  readonly localAddress?: string | undefined;
}): boolean {
  const remote = unmapped(socket.remoteAddress);
  if (remote === undefined) return false;
  if (remote === '::1' || (isIP(remote) === 4 && remote.startsWith('127.'))) return true;
  return remote === unmapped(socket.localAddress);
}

function unmapped(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') === true && isIP(address.slice(7)) === 4
    ? address.slice(7)
    : address;
}

/** Whether a listening host is every interface (`:PORT`), which a command warns about. */
export function isEveryInterface(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** The warning a command logs when it serves on every interface. */
export const EVERY_INTERFACE_WARNING =
  'serving /metrics on every interface: anyone who reaches this host may read it (bind to one address: docs/metrics.md)';

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
    const detail = (text: string, plain: string): string =>
      isLocalPeer(req.socket) ? `${text}\n` : plain;
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
          answer(500, detail(String(error), 'metrics unavailable\n'));
        },
      );
    } else if (path === '/healthz') {
      answer(200, 'ok\n');
    } else if (path === '/readyz') {
      ready().then(
        (problem) => {
          if (problem === undefined) answer(200, 'ok\n');
          else answer(503, detail(problem, NOT_READY));
        },
        (error: unknown) => {
          answer(503, detail(String(error), NOT_READY));
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
