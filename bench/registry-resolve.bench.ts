// Tag → digest resolution at scale (issue 5): 500 tags on one token-auth registry resolved with
// concurrency 16 through RegistryClient, timed, with the token server counting token fetches
// per scope and the registry's access log counting every request and any blob GET. Then the
// registry load of verification (issue 8): two untimed passes through a byte-counting proxy,
// one with a fresh client (empty token cache) and one with the same client again.
import { type Server, type Socket, connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { RegistryClient } from '../src/registry/client.ts';
import { RegistryCredential } from '../src/image/credential.ts';
import { buildImage, fileLayer } from '../test/harness/images.ts';
import { registryClient, TOKEN_AUTH } from '../test/harness/index.ts';
import { type Benchmark, type Figure, pool, summarize, timed } from './lib.ts';

const CONCURRENCY = 16;

/** A TCP proxy in front of the registry that counts the bytes each way. */
class CountingProxy {
  up = 0;
  down = 0;
  readonly server: Server;
  readonly sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(target: string): Promise<CountingProxy> {
    const [host, port] = target.split(':') as [string, string];
    const proxy = new CountingProxy(
      createServer((client) => {
        const upstream = connect(Number(port), host);
        for (const s of [client, upstream]) {
          proxy.sockets.add(s);
          s.on('close', () => proxy.sockets.delete(s));
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.on('data', (d: Buffer) => (proxy.up += d.length));
        upstream.on('data', (d: Buffer) => (proxy.down += d.length));
        client.pipe(upstream);
        upstream.pipe(client);
      }),
    );
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
/** Tags are spread over this many repositories, so "one fetch per scope" is tested per scope. */
const REPOSITORIES = 5;

const benchmark: Benchmark = {
  name: 'registry-resolve',
  area: 'Registry',
  method:
    `Pushes 500 tags of small distinct images (one shared 1-file layer, distinct configs) over ` +
    `${REPOSITORIES} repositories of a token-auth docker-registry 2.8 whose HTTPS token server ` +
    "is the harness's Docker-Hub-like one, then resolves all 500 tag → digest with concurrency " +
    `${CONCURRENCY} through one new RegistryClient per round (so each round starts with an ` +
    'empty token cache and pays its token fetches). Every resolved digest is checked against the ' +
    'pushed one. Token fetches are counted by the token server, requests and blob GETs by the ' +
    "registry's access log (prepull's user agent only). 5 rounds; --quick: 50 tags, 2 rounds. " +
    'Registry load of verification, untimed, after the rounds: the same tags resolved twice more ' +
    'through a TCP proxy in front of the registry that counts the bytes both ways — once by a ' +
    'fresh client (empty token cache) and once more by the same client (tokens cached, as in ' +
    'every later verification) — with requests counted by the access log and token fetches by ' +
    'the token server.',
  async run(ctx) {
    const count = ctx.quick ? 50 : 500;
    const rounds = ctx.quick ? 2 : 5;
    const harness = await ctx.harness({ registries: ['token'], containerd: false, docker: false });
    const endpoint = harness.info.registries.token!;
    const tokenServer = harness.tokenServer!;
    const registry = harness.registry('token');

    const layer = fileLayer({ '/bench/readme': 'registry-resolve benchmark' });
    const tags = Array.from({ length: count }, (_, i) => ({
      repository: `bench/resolve-${i % REPOSITORIES}`,
      tag: `t${i}`,
      image: buildImage({ layers: [layer], labels: { 'bench.index': String(i) } }),
    }));
    const pushStart = performance.now();
    const pusher = registryClient(endpoint);
    try {
      // The shared layer goes to each repository once first: distribution 2.8 can lose a blob
      // that two uploads to the same repository commit at the same moment.
      for (const t of tags.slice(0, REPOSITORIES)) await pusher.push(t.repository, t.tag, t.image);
      await pool(tags.slice(REPOSITORIES), CONCURRENCY, async (t) => {
        await pusher.push(t.repository, t.tag, t.image);
      });
    } finally {
      pusher.close();
    }
    ctx.log(`pushed ${count} tags in ${((performance.now() - pushStart) / 1000).toFixed(1)} s`);

    const credentials = [
      new RegistryCredential({ source: 'benchmark', key: endpoint.host, ...TOKEN_AUTH }),
    ];
    const seconds: number[] = [];
    const fetchesPerScope: number[] = [];
    const requestsPerImage: number[] = [];
    let blobGets = 0;
    for (let round = 0; round < rounds; round++) {
      const tokenMark = tokenServer.requests.length;
      const logMark = registry.accessLog().length;
      const client = new RegistryClient({
        registries: { [endpoint.host]: { insecure: true, ca: harness.caPem } },
        maxConcurrentPerRegistry: CONCURRENCY,
      });
      try {
        const ms = await timed(() =>
          pool(tags, CONCURRENCY, async (t) => {
            const resolved = await client.resolve(`${endpoint.host}/${t.repository}:${t.tag}`, {
              credentials,
            });
            if (resolved.digest !== t.image.digest) {
              throw new Error(
                `${t.repository}:${t.tag} resolved to ${resolved.digest}, pushed ${t.image.digest}`,
              );
            }
          }),
        );
        seconds.push(ms / 1000);
      } finally {
        await client.close();
      }
      const tokenRequests = tokenServer.requests.slice(tokenMark);
      const perScope = new Map<string, number>();
      for (const r of tokenRequests) {
        for (const scope of r.scopes) perScope.set(scope, (perScope.get(scope) ?? 0) + 1);
      }
      if (perScope.size !== REPOSITORIES) {
        throw new Error(`expected token requests for ${REPOSITORIES} scopes, saw ${perScope.size}`);
      }
      fetchesPerScope.push(Math.max(...perScope.values()));
      const ours = registry
        .accessLog()
        .slice(logMark)
        .filter((e) => e.userAgent === 'prepull');
      blobGets += ours.filter((e) => e.method === 'GET' && e.path.includes('/blobs/')).length;
      requestsPerImage.push((ours.length + tokenRequests.length) / count);
    }

    // Registry load of one verification, through the counting proxy: a fresh client (its first
    // request to each repository meets a 401 and one token fetch per repository), then the same
    // client again (token cached: what every later verification costs).
    const proxy = await CountingProxy.start(endpoint.host);
    const load: {
      requests: number;
      heads: number;
      tokens: number;
      bytes: number;
      up: number;
    }[] = [];
    const loadClient = new RegistryClient({
      registries: { [proxy.host]: { insecure: true, ca: harness.caPem } },
      maxConcurrentPerRegistry: CONCURRENCY,
    });
    try {
      const viaProxy = [
        new RegistryCredential({ source: 'benchmark', key: proxy.host, ...TOKEN_AUTH }),
      ];
      for (let pass = 0; pass < 2; pass++) {
        const tokenMark = tokenServer.requests.length;
        const logMark = registry.accessLog().length;
        proxy.up = 0;
        proxy.down = 0;
        await pool(tags, CONCURRENCY, async (t) => {
          const resolved = await loadClient.resolve(`${proxy.host}/${t.repository}:${t.tag}`, {
            credentials: viaProxy,
          });
          if (resolved.digest !== t.image.digest)
            throw new Error(`${t.repository}:${t.tag} resolved to ${resolved.digest}`);
        });
        const ours = registry
          .accessLog()
          .slice(logMark)
          .filter((e) => e.userAgent === 'prepull');
        load.push({
          requests: ours.length,
          heads: ours.filter((e) => e.method === 'HEAD').length,
          tokens: tokenServer.requests.length - tokenMark,
          bytes: proxy.up + proxy.down,
          up: proxy.up,
        });
      }
    } finally {
      await loadClient.close();
      await proxy.stop();
    }
    const [cold, warm] = load as [(typeof load)[0], (typeof load)[0]];
    if (warm.heads !== warm.requests)
      throw new Error(
        `a verification with a cached token made ${warm.requests - warm.heads} non-HEAD requests`,
      );

    const label = `${count} tags`;
    const one = (value: number): ReturnType<typeof summarize> => summarize([value]);
    const figures: Figure[] = [
      {
        id: 'registry.resolve500.seconds',
        label: `resolve ${label}, concurrency ${CONCURRENCY}, token auth`,
        unit: 's',
        ...summarize(seconds),
        goal: { op: '<=', value: 2, source: 'issue 5' },
        ...(ctx.quick ? { note: 'quick mode: 50 tags, not 500' } : {}),
      },
      {
        id: 'registry.resolve500.tokenFetchesPerScope',
        label: 'token fetches per scope per token lifetime (most of any scope, per round)',
        unit: 'fetches',
        ...summarize(fetchesPerScope),
        goal: { op: '==', value: 1, source: 'issue 5' },
        note: `counted by the token server; tokens live ${tokenServer.expiresIn} s, far longer than a round`,
      },
      {
        id: 'registry.resolve500.blobGets',
        label: 'blob GETs while resolving (all rounds)',
        unit: 'requests',
        median: blobGets,
        min: blobGets,
        max: blobGets,
        samples: rounds,
        goal: { op: '==', value: 0, source: 'issue 5' },
        note: "counted in the registry's access log",
      },
      {
        id: 'registry.resolve500.requestsPerImage',
        label: 'HTTP requests per image (registry and token server)',
        unit: 'requests',
        ...summarize(requestsPerImage),
        note:
          'one HEAD per image; the first requests to each repository also meet one 401 each ' +
          'before the shared token fetch',
      },
      {
        id: 'registry.verify.warm.requestsPerImage',
        label: 'registry requests per image per verification, token cached',
        unit: 'requests',
        ...one(warm.requests / count),
        note: `${warm.requests} requests for ${count} images, ${warm.heads} of them HEAD; no GET`,
      },
      {
        id: 'registry.verify.warm.bytesPerImage',
        label: 'bytes on the wire per verification (HEAD request and response), token cached',
        unit: 'bytes',
        ...one(Math.round(warm.bytes / count)),
        note:
          `both directions, HTTP headers included, counted by a TCP proxy in front of the ` +
          `registry: ${Math.round(warm.up / count)} bytes of request (most of it the bearer token, ` +
          `which the harness token server signs with its certificate in the JWT header) and ` +
          `${Math.round((warm.bytes - warm.up) / count)} of response headers; no body`,
      },
      {
        id: 'registry.verify.warm.tokenFetches',
        label: 'token fetches for a second verification of every image by the same client',
        unit: 'fetches',
        ...one(warm.tokens),
      },
      {
        id: 'registry.verify.cold.tokenFetches',
        label: `token fetches for a first verification of ${count} images in ${REPOSITORIES} repositories`,
        unit: 'fetches',
        ...one(cold.tokens),
        note: 'one per repository (scope): the token is shared by every image of the repository',
      },
      {
        id: 'registry.verify.cold.bytesPerImage',
        label: 'bytes on the wire per verification, fresh client (401s included)',
        unit: 'bytes',
        ...one(Math.round(cold.bytes / count)),
        note: `${cold.requests} registry requests (${cold.heads} HEAD) for ${count} images; token server traffic (HTTPS) not included`,
      },
    ];
    return figures;
  },
};

export default benchmark;
