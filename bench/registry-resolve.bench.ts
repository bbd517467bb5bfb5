// Tag → digest resolution at scale (issue 5): 500 tags on one token-auth registry resolved with
// concurrency 16 through RegistryClient, timed, with the token server counting token fetches
// per scope and the registry's access log counting every request and any blob GET.
import { RegistryClient } from '../src/registry/client.ts';
import { RegistryCredential } from '../src/registry/credentials.ts';
import { buildImage, fileLayer } from '../test/harness/images.ts';
import { registryClient, TOKEN_AUTH } from '../test/harness/index.ts';
import { type Benchmark, type Figure, pool, summarize, timed } from './lib.ts';

const CONCURRENCY = 16;
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
    "registry's access log (prepull's user agent only). 5 rounds; --quick: 50 tags, 2 rounds.",
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

    const label = `${count} tags`;
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
    ];
    return figures;
  },
};

export default benchmark;
