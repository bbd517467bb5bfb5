// A real HTTP server on 127.0.0.1 (port 0) whose answers a unit test scripts: a stand-in
// registry, token service or proxy for the registry client's unit tests. Real sockets, no root,
// no system packages; every request is recorded with its headers and body.
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  readonly method: string;
  /** Path and query, or the absolute URL a proxy is asked for. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The client's port: requests sharing it came over one kept-alive connection. */
  readonly remotePort: number;
}

export type FakeHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export class FakeHttpServer {
  readonly requests: RecordedRequest[] = [];
  handler: FakeHandler;
  /** The most requests that were being answered at once. */
  maxInFlight = 0;
  readonly #server: Server;
  #inFlight = 0;

  private constructor(server: Server, handler: FakeHandler) {
    this.#server = server;
    this.handler = handler;
  }

  static async start(
    handler: FakeHandler = (_, res) => {
      res.writeHead(404).end();
    },
  ): Promise<FakeHttpServer> {
    const holder: { instance?: FakeHttpServer } = {};
    const server = createServer((req, res) => {
      void holder.instance?.handle(req, res);
    });
    const instance = new FakeHttpServer(server, handler);
    holder.instance = instance;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return instance;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** 127.0.0.1:port */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight);
    res.on('close', () => this.#inFlight--);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      remotePort: req.socket.remotePort ?? 0,
    };
    this.requests.push(recorded);
    try {
      await this.handler(recorded, res);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(error));
    }
  }
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = await FakeHttpServer.start();
  const port = server.port;
  await server.close();
  return port;
}

/** Writes a JSON answer with its length. */
export function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
