// Pull overhead of the runtime adapter (issue 4): a ~300 MB, 7-layer image pulled through
// prepull's containerd adapter (CRI PullImage plus the status read-back and the progress poller)
// against a raw CRI PullImage of the same image by the harness's kubelet-like client, alternated.
// Between runs the image is removed and the benchmark waits until containerd's content store no
// longer holds any of its blobs, so every pull downloads everything.
import { execFileSync } from 'node:child_process';
import { containerdRuntime } from '../src/runtime/containerd/runtime.ts';
import { ContainerdNative } from '../src/runtime/containerd/native.ts';
import { GrpcConnection } from '../src/runtime/cri/grpc.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { clearLayerCache } from '../test/harness/images.ts';
import { pushImage } from '../test/harness/index.ts';
import { type Benchmark, type Figure, alternate, layeredImage, summarize } from './lib.ts';

const MiB = 1024 * 1024;
const PULL_TIMEOUT_MS = 600_000;
const GC_TIMEOUT_MS = 60_000;

const benchmark: Benchmark = {
  name: 'runtime-pull',
  area: 'Runtime',
  method:
    'Builds one image of 7 layers (a marker file and six 50 MiB incompressible fillers, ' +
    '~300 MB) and pushes it to the harness plain registry. Each round pulls it once through ' +
    "prepull's containerd adapter (`pull()` with a progress callback: CRI PullImage, the content " +
    'ingest poller every 200 ms, then ImageStatus and the pin-label lookup) and once with a raw ' +
    "CRI PullImage by the harness's kubelet-like client, alternated (A B A B …), against " +
    'containerd 1.6 with CRI. Before every pull the image is removed and the benchmark waits ' +
    "until containerd's content store holds none of its blobs and its snapshots are gone, so " +
    'each pull downloads and unpacks all of it, then flushes dirty pages (`sync`) so writeback ' +
    'from one pull does not land in the next. One untimed warm-up pull first. 10 rounds; ' +
    '--quick: six 5 MiB fillers (~30 MB), 2 rounds.',
  async run(ctx) {
    const rounds = ctx.quick ? 2 : 10;
    const layerBytes = (ctx.quick ? 5 : 50) * MiB;
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
    const blobs = new Set([image.digest, image.configDigest, ...image.layers.map((l) => l.digest)]);
    clearLayerCache();

    const cri = new KubeletCri(socket);
    const runtime = containerdRuntime({ endpoint: socket });
    const connection = new GrpcConnection(socket);
    const native = new ContainerdNative({ connection });
    const progressReports: number[] = [];
    try {
      const version = await cri.version();
      ctx.recordEnvironment(
        'containerd (CRI)',
        `${version.runtime_name} ${version.runtime_version}`,
      );

      const snapshots = (): number =>
        execFileSync('ctr', ['--address', socket, '--namespace', 'k8s.io', 'snapshots', 'ls'], {
          encoding: 'utf8',
        })
          .trim()
          .split('\n').length;
      const baselineSnapshots = snapshots();
      // Untimed: the image, its blobs and its unpacked snapshots gone, and the previous pull's
      // dirty pages written back, so one pull's cleanup does not bleed into the next one's time.
      const removeAndCollect = async (): Promise<void> => {
        await cri.removeImage(ref);
        const deadline = Date.now() + GC_TIMEOUT_MS;
        for (;;) {
          const held = (await native.listContent()).filter((d) => blobs.has(d));
          if (held.length === 0 && snapshots() <= baselineSnapshots) break;
          if (Date.now() > deadline) {
            throw new Error(
              `containerd still holds ${held.length} blobs of the image after removal`,
            );
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        execFileSync('sync');
        await new Promise((resolve) => setTimeout(resolve, 500));
      };
      const viaAdapter = async (): Promise<void> => {
        let reports = 0;
        const pulled = await runtime.pull(ref, {
          timeoutMs: PULL_TIMEOUT_MS,
          onProgress: () => {
            reports++;
          },
        });
        if (pulled.id !== image.configDigest) throw new Error(`adapter pulled ${pulled.id}`);
        progressReports.push(reports);
      };
      const raw = async (): Promise<void> => {
        const id = await cri.pullImage(ref, undefined, PULL_TIMEOUT_MS);
        if (id !== image.configDigest) throw new Error(`raw CRI pulled ${id}`);
      };

      await removeAndCollect();
      await raw(); // warm-up: registry and page cache
      const samples = await alternate(rounds, viaAdapter, raw, removeAndCollect);
      await removeAndCollect();

      const seconds = (values: number[]): ReturnType<typeof summarize> => {
        const s = summarize(values.map((ms) => ms / 1000));
        return s;
      };
      const baseline = 'raw CRI PullImage of the same image (the harness KubeletCri)';
      const figures: Figure[] = [
        {
          id: 'runtime.pull.ratio',
          label: `adapter pull ÷ raw CRI PullImage, ${megabytes.toFixed(0)} MB, 7 layers`,
          unit: '×',
          ...summarize(samples.ratios),
          baseline,
          goal: { op: '<=', value: 1.03, source: 'issue 4' },
          note: `progress callbacks per adapter pull: ${progressReports.join(', ')}`,
        },
        {
          id: 'runtime.pull.adapter.seconds',
          label: `adapter pull of ${megabytes.toFixed(0)} MB`,
          unit: 's',
          ...seconds(samples.a),
        },
        {
          id: 'runtime.pull.raw.seconds',
          label: `raw CRI PullImage of ${megabytes.toFixed(0)} MB`,
          unit: 's',
          ...seconds(samples.b),
        },
      ];
      return figures;
    } finally {
      cri.close();
      await runtime.close();
      connection.close();
    }
  },
};

export default benchmark;
