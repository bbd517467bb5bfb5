// Pull overhead of the runtime adapter (issue 4): a ~300 MB, 7-layer image pulled through
// prepull's containerd adapter (CRI PullImage plus the status read-back and the progress poller)
// against a raw CRI PullImage of the same image by the harness's kubelet-like client, in rotated
// order. Two more arms say what the ratio can be trusted to: the adapter without the progress
// poller (its cost), and a second raw pull (the noise floor: the same call against itself).
// Between runs the image is removed and the benchmark waits until containerd's content store
// no longer holds any of its blobs, so every pull downloads everything.
import { containerdRuntime } from '../src/runtime/containerd/runtime.ts';
import { type CallOptions, GrpcConnection, type Method } from '../src/runtime/cri/grpc.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { clearLayerCache } from '../test/harness/images.ts';
import { pushImage } from '../test/harness/index.ts';
import {
  type Benchmark,
  CriCleaner,
  type Figure,
  blobsOf,
  interleave,
  layeredImage,
  ratios,
  seconds,
  summarize,
} from './lib.ts';

const MiB = 1024 * 1024;
const PULL_TIMEOUT_MS = 600_000;

/** The adapter's connection, timing its PullImage calls: what the adapter adds is the rest. */
class TimedConnection extends GrpcConnection {
  lastPullMs = 0;

  override async unary<Response>(
    method: Method,
    request: object,
    options: CallOptions,
  ): Promise<Response> {
    if (!method.path.endsWith('/PullImage')) return super.unary(method, request, options);
    const start = performance.now();
    try {
      return await super.unary<Response>(method, request, options);
    } finally {
      this.lastPullMs = performance.now() - start;
    }
  }
}

const benchmark: Benchmark = {
  name: 'runtime-pull',
  area: 'Runtime',
  method:
    'Builds one image of 7 layers (a marker file and six 50 MiB incompressible fillers, ' +
    '~315 MB) and pushes it to the harness plain registry; containerd 1.6 with CRI pulls it over ' +
    'loopback. Each round pulls it four ways, in an order rotated every round (A B C D, ' +
    "B C D A, …): through prepull's containerd adapter (`pull()` with a progress callback: CRI " +
    'PullImage, the content-ingest poller listing ingests every 200 ms, then ImageStatus and the ' +
    'pin-label lookup); through the adapter without a progress callback (no poller); and twice ' +
    "with a raw CRI PullImage by the harness's kubelet-like client. The baseline of a round is " +
    'the mean of its two raw pulls, and the second raw pull against the first is the noise ' +
    'floor: the spread the same call shows against itself. The time the adapter adds around ' +
    'the runtime’s pull is also taken directly: the adapter’s wall time minus its own PullImage ' +
    'call, timed on its gRPC connection. Before every pull the image is removed and the ' +
    "benchmark waits until containerd's content store holds none of its blobs and its " +
    'snapshots are gone, then flushes dirty pages (`sync`) so writeback from one pull does not ' +
    'land in the next. One untimed warm-up pull by each client first. 4 rounds (16 pulls); ' +
    '--quick: six 2 MiB fillers (~13 MB), 1 round.',
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 4;
    const layerBytes = (ctx.quick ? 2 : 50) * MiB;
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;
    const socket = info.containerd!.socket;

    const seed = `runtime-pull-${Date.now().toString(36)}`;
    const image = layeredImage(seed, layerBytes);
    const megabytes = image.size / 1e6;
    ctx.log(`pushing ${megabytes.toFixed(0)} MB in ${image.layers.length} layers`);
    await pushImage(plain, 'bench/runtime-pull', 'v1', image);
    const ref = `${plain.host}/bench/runtime-pull:v1`;
    const blobs = blobsOf([image]);
    clearLayerCache();

    const cri = new KubeletCri(socket);
    const connection = new TimedConnection(socket);
    const runtime = containerdRuntime({ endpoint: socket, connection });
    const cleaner = new CriCleaner(socket);
    const progressReports: number[] = [];
    const added: { progress: number[]; plain: number[] } = { progress: [], plain: [] };
    try {
      const version = await cri.version();
      ctx.recordEnvironment(
        'containerd (CRI)',
        `${version.runtime_name} ${version.runtime_version}`,
      );
      cleaner.markBaseline();
      const viaAdapter = (withProgress: boolean) => async (): Promise<void> => {
        let reports = 0;
        const start = performance.now();
        const pulled = await runtime.pull(ref, {
          timeoutMs: PULL_TIMEOUT_MS,
          ...(withProgress
            ? {
                onProgress: () => {
                  reports++;
                },
              }
            : {}),
        });
        const ms = performance.now() - start;
        if (pulled.id !== image.configDigest) throw new Error(`adapter pulled ${pulled.id}`);
        if (withProgress) progressReports.push(reports);
        added[withProgress ? 'progress' : 'plain'].push(ms - connection.lastPullMs);
      };
      const raw = async (): Promise<void> => {
        const id = await cri.pullImage(ref, undefined, PULL_TIMEOUT_MS);
        if (id !== image.configDigest) throw new Error(`raw CRI pulled ${id}`);
      };
      const arms = {
        adapter: viaAdapter(true),
        raw,
        noPoller: viaAdapter(false),
        raw2: raw,
      };
      const prepare = (): Promise<void> => cleaner.remove(cri, [ref], blobs);

      // Warm-up: the registry's page cache, both clients' connections and code paths.
      for (const arm of [arms.raw, arms.adapter]) {
        await prepare();
        await arm();
      }
      progressReports.length = 0;
      added.progress.length = 0;
      added.plain.length = 0;
      const samples = await interleave(rounds, arms, prepare);
      await prepare();

      const baseline = samples.raw.map((ms, i) => (ms + samples.raw2[i]!) / 2);
      const size = `${megabytes.toFixed(0)} MB`;
      const baselineText =
        'raw CRI PullImage of the same image (the harness KubeletCri): the mean of the two in ' +
        'the same round';
      const figures: Figure[] = [
        {
          id: 'runtime.pull.ratio',
          label: `adapter pull ÷ raw CRI PullImage, ${size}, 7 layers`,
          chart: `containerd adapter ÷ raw CRI, ${size}`,
          unit: '×',
          ...summarize(ratios(samples.adapter, baseline)),
          baseline: baselineText,
          goal: { op: '<=', value: 1.03, source: 'issue 4' },
          note: `with the progress poller; progress callbacks per pull: ${progressReports.join(', ')}`,
        },
        {
          id: 'runtime.pull.noPollerRatio',
          label: `adapter pull without progress (no poller) ÷ raw CRI PullImage, ${size}`,
          chart: `adapter, no progress poller ÷ raw CRI, ${size}`,
          unit: '×',
          ...summarize(ratios(samples.noPoller, baseline)),
          baseline: baselineText,
          note: 'how `prepull sync` and the agent pull: the engine passes no progress callback',
        },
        {
          id: 'runtime.pull.noiseFloor',
          label: `noise floor: raw CRI PullImage ÷ raw CRI PullImage, ${size}`,
          chart: `noise floor: raw CRI ÷ raw CRI, ${size}`,
          unit: '×',
          ...summarize(ratios(samples.raw2, samples.raw)),
          baseline: 'the other raw CRI PullImage of the same round',
          note: 'the same call against itself: a ratio within this spread is indistinguishable from 1',
        },
        {
          id: 'runtime.pull.adapterAddedMs',
          label: 'time the adapter adds around PullImage, with progress',
          unit: 'ms',
          ...summarize(added.progress),
          note:
            'adapter wall time − its PullImage call: the status read-back, the pin-label lookup ' +
            'and the last progress sample',
        },
        {
          id: 'runtime.pull.adapterAddedMs.noPoller',
          label: 'time the adapter adds around PullImage, without progress',
          unit: 'ms',
          ...summarize(added.plain),
        },
        {
          id: 'runtime.pull.adapter.seconds',
          label: `adapter pull of ${size}`,
          unit: 's',
          ...seconds(samples.adapter),
        },
        {
          id: 'runtime.pull.raw.seconds',
          label: `raw CRI PullImage of ${size}`,
          unit: 's',
          ...seconds([...samples.raw, ...samples.raw2]),
          note: 'both raw pulls of every round',
        },
      ];
      return figures;
    } finally {
      cri.close();
      await runtime.close();
      cleaner.close();
    }
  },
};

export default benchmark;
