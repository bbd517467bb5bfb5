// A TCP proxy on 127.0.0.1 that forwards to a registry and slows what it sends back to a set
// number of bytes per second on each connection: pulls through it take a predictable time
// (size ÷ rate) whatever the machine's load, without images big enough to strain the disk. The
// runtimes reach it as they reach any loopback registry (plain HTTP, no configuration), so a
// test names images `${proxy.host}/repo:tag` to pull them slowly from the registry behind it.
// With `hangAfterBytes` it also plays a registry that stalls mid-blob: each connection forwards
// that many bytes of answers, then nothing more, and stays open (what a wedged proxy or a
// half-dead link does), so a pull through it hangs without an error.
import { type Server, type Socket, connect, createServer } from 'node:net';

export interface ThrottleProxyOptions {
  /** The registry's `host:port` (plain HTTP). */
  target: string;
  /** The rate of each connection's responses, in bytes per second. */
  bytesPerSecond: number;
  /** Each connection forwards this many bytes of answers, then nothing, and stays open. */
  hangAfterBytes?: number;
}

export class ThrottleProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Bytes sent back to clients, over every connection. */
  bytesSent = 0;

  readonly #hangAfter: number;

  private constructor(
    target: { host: string; port: number },
    bytesPerSecond: number,
    hangAfter: number,
  ) {
    this.#hangAfter = hangAfter;
    this.#server = createServer((client) => {
      this.#relay(client, target.host, target.port, bytesPerSecond);
    });
  }

  static async start(options: ThrottleProxyOptions): Promise<ThrottleProxy> {
    const [host = '', portText = ''] = options.target.split(':');
    const port = Number(portText);
    if (host === '' || !Number.isInteger(port)) {
      throw new Error(`ThrottleProxy: target must be host:port, got ${options.target}`);
    }
    if (!(options.bytesPerSecond > 0)) {
      throw new Error(`ThrottleProxy: bytesPerSecond must be positive`);
    }
    const proxy = new ThrottleProxy(
      { host, port },
      options.bytesPerSecond,
      options.hangAfterBytes ?? Number.POSITIVE_INFINITY,
    );
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => {
        resolve();
      });
    });
    return proxy;
  }

  /** `127.0.0.1:port`: the registry host to name images with. */
  get host(): string {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? `127.0.0.1:${address.port}` : '';
  }

  #relay(client: Socket, host: string, port: number, bytesPerSecond: number): void {
    const upstream = connect(port, host);
    this.#sockets.add(client);
    this.#sockets.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    let sent = 0;
    // A hung connection outlives its upstream: the client must see silence, not an end.
    const upstreamGone = (): void => {
      if (sent < this.#hangAfter) {
        close();
        return;
      }
      upstream.destroy();
      this.#sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', upstreamGone).on('close', upstreamGone);
    client.pipe(upstream);
    // Each chunk goes out at once; the next is read only once this one's share of the second
    // has passed: the upstream's TCP window does the rest.
    upstream.on('data', (chunk: Buffer) => {
      upstream.pause();
      const room = this.#hangAfter - sent;
      if (room < chunk.length) {
        // Hang: the part that fits goes out, then the connection stays open with nothing more.
        if (room > 0) client.write(chunk.subarray(0, room));
        this.bytesSent += Math.max(0, room);
        sent = this.#hangAfter;
        return;
      }
      sent += chunk.length;
      this.bytesSent += chunk.length;
      client.write(chunk);
      setTimeout(
        () => {
          if (!upstream.destroyed) upstream.resume();
        },
        (chunk.length / bytesPerSecond) * 1000,
      );
    });
    upstream.on('end', () => {
      if (sent < this.#hangAfter) client.end();
    });
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }
}
