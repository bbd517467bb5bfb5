// Pull overhead across sizes (issue 8): the same image pulled by prepull and by the runtime's own
// pull, interleaved round by round, for 1 MB and 100 MB images through containerd (raw CRI
// PullImage, prepull's containerd adapter, `prepull sync --once`) and for 1, 100 and 300 MB
// through Docker Engine (a raw `POST /images/create`, as `docker pull` sends it, and prepull's
// Docker adapter). The 300 MB containerd cells are runtime-pull's (adapter) and sync-pull's.
import { request } from 'node:http';
import { join } from 'node:path';
import { containerdRuntime } from '../src/runtime/containerd/runtime.ts';
import { DockerRuntime } from '../src/runtime/docker/runtime.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { type BuiltImage, clearLayerCache } from '../test/harness/images.ts';
import { type HarnessInfo, pushImage } from '../test/harness/index.ts';
import {
  type Benchmark,
  type BenchContext,
  CriCleaner,
  type Figure,
  blobsOf,
  flushPages,
  interleave,
  layeredImage,
  ratios,
  seconds,
  summarize,
} from './lib.ts';
import { cliBuild, expectAllPresent, runSync, syncArgs, writePrePulls } from './sync-support.ts';

const PULL_TIMEOUT_MS = 600_000;

interface Size {
  /** "1mb": figure ids; label: "1 MB". */
  key: string;
  label: string;
  /** Bytes of each of the six filler layers. */
  layerBytes: number;
  rounds: number;
  /** Whether containerd is measured at this size (300 MB: runtime-pull and sync-pull do it). */
  cri: boolean;
}

function sizes(quick: boolean): Size[] {
  const MiB = 1024 * 1024;
  if (quick) {
    return [
      { key: '1mb', label: '1 MB', layerBytes: 160 * 1024, rounds: 1, cri: true },
      { key: '100mb', label: '5 MB (quick)', layerBytes: 0.8 * MiB, rounds: 1, cri: true },
      { key: '300mb', label: '5 MB (quick)', layerBytes: 0.8 * MiB, rounds: 1, cri: false },
    ];
  }
  return [
    { key: '1mb', label: '1 MB', layerBytes: 160 * 1024, rounds: 3, cri: true },
    { key: '100mb', label: '100 MB', layerBytes: 16 * MiB, rounds: 3, cri: true },
    { key: '300mb', label: '300 MB', layerBytes: 50 * MiB, rounds: 3, cri: false },
  ];
}

/** One request to the Engine API over its socket; resolves with status and the whole body. */
function engine(
  socket: string,
  method: string,
  path: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** What `docker pull` does through the Engine API: POST /images/create and read it to the end. */
async function dockerPull(socket: string, repository: string, tag: string): Promise<void> {
  const query = `fromImage=${encodeURIComponent(repository)}&tag=${encodeURIComponent(tag)}`;
  const { status, body } = await engine(socket, 'POST', `/images/create?${query}`);
  if (status !== 200 || body.includes('"error"'))
    throw new Error(`docker pull ${repository}:${tag}: ${status} ${body.slice(-300)}`);
}

/** Removes the image from Docker (its layers go with it) and flushes dirty pages. */
async function dockerRemove(socket: string, ref: string): Promise<void> {
  const name = encodeURIComponent(ref);
  const removed = await engine(socket, 'DELETE', `/images/${name}?force=1`);
  if (removed.status !== 200 && removed.status !== 404)
    throw new Error(`docker rmi ${ref}: ${removed.status} ${removed.body}`);
  const left = await engine(socket, 'GET', `/images/${name}/json`);
  if (left.status !== 404) throw new Error(`docker still has ${ref} after removal`);
  await flushPages();
}

interface Measured {
  size: Size;
  megabytes: number;
  samples: Record<string, number[]>;
}

async function measureSize(
  ctx: BenchContext,
  info: HarnessInfo,
  size: Size,
  clients: { cri: KubeletCri; cleaner: CriCleaner },
  warmUp: boolean,
): Promise<Measured> {
  const plain = info.registries.plain!;
  const containerdSocket = info.containerd!.socket;
  const dockerSocket = info.docker!.socket;
  const image: BuiltImage = layeredImage(
    `pull-${size.key}-${Date.now().toString(36)}`,
    Math.round(size.layerBytes),
  );
  const repository = `bench/pull-${size.key}`;
  await pushImage(plain, repository, 'v1', image);
  clearLayerCache();
  const ref = `${plain.host}/${repository}:v1`;
  const blobs = blobsOf([image]);
  const megabytes = image.size / 1e6;
  ctx.log(`${size.label}: ${megabytes.toFixed(1)} MB in ${image.layers.length} layers`);

  const adapter = containerdRuntime({ endpoint: containerdSocket });
  const docker = new DockerRuntime({ endpoint: dockerSocket });
  const file = writePrePulls(join(info.workDir, `pull-${size.key}.yaml`), 'pull', [ref]);
  const syncCommand = [...syncArgs(info, [file]), '--once', '--output', 'json'];
  const expectId = (id: string, who: string): void => {
    if (id !== image.configDigest)
      throw new Error(`${who} pulled ${id}, not ${image.configDigest}`);
  };
  const criArms = {
    criRaw: async () => {
      expectId(await clients.cri.pullImage(ref, undefined, PULL_TIMEOUT_MS), 'raw CRI');
    },
    criAdapter: async () => {
      const pulled = await adapter.pull(ref, {
        timeoutMs: PULL_TIMEOUT_MS,
        onProgress: () => undefined,
      });
      expectId(pulled.id, 'the containerd adapter');
    },
    sync: async () => {
      const report = expectAllPresent(await runSync(syncCommand, PULL_TIMEOUT_MS), 2);
      const mine = report.images.find((i) => i.image === ref);
      expectId(mine?.imageId ?? '', '`prepull sync --once`');
    },
  };
  const dockerArms = {
    dockerRaw: () => dockerPull(dockerSocket, `${plain.host}/${repository}`, 'v1'),
    dockerAdapter: async () => {
      const pulled = await docker.pull(ref, {
        timeoutMs: PULL_TIMEOUT_MS,
        onProgress: () => undefined,
      });
      expectId(pulled.id, 'the Docker adapter');
    },
  };
  const arms: Record<string, () => Promise<void>> = {
    ...(size.cri ? criArms : {}),
    ...dockerArms,
  };
  const prepare = async (arm: string): Promise<void> => {
    if (arm in dockerArms) await dockerRemove(dockerSocket, ref);
    else await clients.cleaner.remove(clients.cri, [ref], blobs);
  };
  try {
    // Warm-up, untimed, before the first size: the CLI's modules in the page cache, each
    // runtime's and client's code paths and connections.
    if (warmUp) {
      for (const [name, arm] of Object.entries(arms)) {
        await prepare(name);
        await arm();
      }
    }
    const samples = await interleave(size.rounds, arms, prepare);
    for (const name of Object.keys(arms)) await prepare(name);
    return { size, megabytes, samples };
  } finally {
    await adapter.close();
    await docker.close();
  }
}

function figuresOf(m: Measured): Figure[] {
  const { size, samples } = m;
  const what = `${m.megabytes >= 10 ? m.megabytes.toFixed(0) : m.megabytes.toFixed(1)} MB`;
  const criBaseline = 'raw CRI PullImage of the same image (the harness KubeletCri), same rounds';
  const dockerBaseline =
    'POST /images/create of the same image read to its end (what `docker pull` sends), same rounds';
  const figures: Figure[] = [];
  if (size.cri) {
    figures.push(
      {
        id: `pull.cri.${size.key}.adapterRatio`,
        label: `containerd adapter pull ÷ raw CRI PullImage, ${what}, 7 layers`,
        chart: `containerd adapter ÷ raw CRI, ${what}`,
        unit: '×',
        ...summarize(ratios(samples.criAdapter!, samples.criRaw!)),
        baseline: criBaseline,
      },
      {
        id: `pull.cri.${size.key}.syncRatio`,
        label: `\`prepull sync --once\` ÷ raw CRI PullImage, ${what}, 7 layers`,
        chart: `sync --once ÷ raw CRI, ${what}`,
        unit: '×',
        ...summarize(ratios(samples.sync!, samples.criRaw!)),
        baseline: criBaseline,
        note: 'the whole command, spawn to exit: Node start-up and module loading included',
      },
      {
        id: `pull.cri.${size.key}.raw.seconds`,
        label: `raw CRI PullImage of ${what}`,
        unit: 's',
        ...seconds(samples.criRaw!),
      },
      {
        id: `pull.cri.${size.key}.adapter.seconds`,
        label: `containerd adapter pull of ${what}`,
        unit: 's',
        ...seconds(samples.criAdapter!),
      },
      {
        id: `pull.cri.${size.key}.sync.seconds`,
        label: `\`prepull sync --once\` of ${what}, spawn to exit`,
        unit: 's',
        ...seconds(samples.sync!),
      },
    );
  }
  figures.push(
    {
      id: `pull.docker.${size.key}.adapterRatio`,
      label: `Docker adapter pull ÷ \`docker pull\` (Engine API), ${what}, 7 layers`,
      chart: `Docker adapter ÷ docker pull, ${what}`,
      unit: '×',
      ...summarize(ratios(samples.dockerAdapter!, samples.dockerRaw!)),
      baseline: dockerBaseline,
    },
    {
      id: `pull.docker.${size.key}.raw.seconds`,
      label: `\`docker pull\` (Engine API) of ${what}`,
      unit: 's',
      ...seconds(samples.dockerRaw!),
    },
    {
      id: `pull.docker.${size.key}.adapter.seconds`,
      label: `Docker adapter pull of ${what}`,
      unit: 's',
      ...seconds(samples.dockerAdapter!),
    },
  );
  return figures;
}

const benchmark: Benchmark = {
  name: 'pull-overhead',
  area: 'Pull overhead',
  method:
    'Three images of 7 layers each (a marker file and six incompressible fillers of 160 KiB, ' +
    '16 MiB and 50 MiB: ~1, ~100 and ~315 MB) on the harness plain-HTTP registry, pulled over ' +
    'loopback by containerd 1.6 (CRI) and by Docker Engine 20.10 of the same harness. At 1 MB ' +
    'and 100 MB each round pulls the image five ways, in an order rotated every round: a raw CRI ' +
    "PullImage by the harness's kubelet-like client (the baseline), prepull's containerd " +
    'adapter (`pull()` with a progress callback: PullImage, the content-ingest poller, then ' +
    'ImageStatus and the pin-label lookup), `node bin/prepull.js sync --once` as a subprocess ' +
    '(spawn to exit; a PrePull naming the image with the defaults; the sandbox image stays ' +
    'present and pinned), a raw Engine API `POST /images/create` read to its end, as ' +
    "`docker pull` sends it (the Docker baseline), and prepull's Docker adapter (`pull()` with " +
    'a progress callback: the same request, its progress stream, then an inspect). At 300 MB ' +
    'only the two Docker arms run here: the containerd adapter and `sync --once` at 300 MB are ' +
    'runtime-pull’s and sync-pull’s figures. Before every pull the image is removed — from ' +
    "containerd, waiting until its content store holds none of the image's blobs and its " +
    'snapshots are gone; from Docker, until the image no longer inspects — and dirty pages ' +
    'are flushed (`sync`). Each arm pulls once untimed before the first size. Ratios are per ' +
    'round against the baseline of the same round. Rounds: ' +
    sizes(false)
      .map((size) => `${size.rounds} at ${size.label}`)
      .join(', ') +
    '; --quick: 1 MB, 5 MB and 5 MB, one round each.',
  async run(ctx) {
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'] });
    const info = harness.info;
    const version = await engine(info.docker!.socket, 'GET', '/version');
    const v = JSON.parse(version.body) as { Version: string; ApiVersion: string };
    ctx.recordEnvironment('Docker Engine', `${v.Version}, API ${v.ApiVersion}`);

    const cri = new KubeletCri(info.containerd!.socket);
    const cleaner = new CriCleaner(info.containerd!.socket);
    try {
      await cri.pullImage(info.containerd!.sandboxImage);
      cleaner.markBaseline();
      const figures: Figure[] = [];
      const all = sizes(ctx.quick);
      for (const size of all) {
        const started = performance.now();
        const measured = await measureSize(ctx, info, size, { cri, cleaner }, size === all[0]);
        ctx.log(`${size.label}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
        figures.push(...figuresOf(measured));
      }
      return figures;
    } finally {
      cri.close();
      cleaner.close();
    }
  },
};

export default benchmark;
