// Resident memory and CPU of `prepull agent` at steady state (issues 7 and 8) with 0, 100 and
// 500 images tracked, each a real process (`node bin/prepull.js agent`) on the harness's
// containerd, against the Kubernetes API test server; a bare Node process is the baseline.
import { type ChildProcess, spawn } from 'node:child_process';
import { KubeClient } from '../src/kube/client.ts';
import { KubeletCri } from '../test/harness/cri.ts';
import { type Benchmark, type Figure, summarize } from './lib.ts';
import {
  PREPULL_BIN,
  cliBuild,
  cpuSecondsPrecise,
  pullAll,
  pushSmallImages,
  rssMiB,
  scrape,
} from './sync-support.ts';
import {
  nodeObject,
  prePullObject,
  quiet,
  showsSettled,
  nicStatus,
  sleep,
  startApiServer,
  waitUntil,
} from './agent-support.ts';

const READINGS = 5;
const READING_INTERVAL_MS = 500;
const MAX_IMAGES_PER_PREPULL = 256;
const LABEL_A = 'bench.prepull.dev/memory-a';
const LABEL_B = 'bench.prepull.dev/memory-b';

interface Quiet {
  rssMiB: number;
  /** CPU (user + system) over the quiet window, in thousandths of a core. */
  millicores: number;
}

/** Quiet for `settleMs`, then the median of a few VmRSS readings and the CPU used meanwhile. */
async function measureQuiet(pid: number, settleMs: number): Promise<Quiet> {
  const cpu0 = cpuSecondsPrecise(pid);
  const t0 = performance.now();
  await sleep(settleMs);
  const readings: number[] = [];
  for (let i = 0; i < READINGS; i++) {
    if (i > 0) await sleep(READING_INTERVAL_MS);
    readings.push(rssMiB(pid));
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    rssMiB: summarize(readings).median,
    millicores: ((cpuSecondsPrecise(pid) - cpu0) / seconds) * 1000,
  };
}

/** A running `prepull agent` process. */
class AgentProcess {
  readonly child: ChildProcess;
  stderr = '';
  readonly #exited: Promise<void>;

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [PREPULL_BIN, 'agent', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      // Only the start-up lines are read; do not keep a long log in memory.
      if (this.stderr.length < 200_000) this.stderr += d;
    });
    this.#exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        resolve();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async metricsUrl(): Promise<string> {
    let url: string | undefined;
    await waitUntil(
      () => {
        if (!this.running) throw new Error(`prepull agent exited: ${this.stderr.slice(-2000)}`);
        const m = /"address":"([^"]+)","msg":"serving \/metrics/.exec(this.stderr);
        url = m === null ? undefined : `http://${m[1]!}/metrics`;
        return url !== undefined;
      },
      'the agent serving /metrics',
      60_000,
    );
    return url!;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const killed = setTimeout(() => this.child.kill('SIGKILL'), 25_000);
    await this.#exited;
    clearTimeout(killed);
  }
}

const benchmark: Benchmark = {
  name: 'agent-memory',
  area: 'Agent',
  method:
    'Loads 500 distinct small images (one shared 1 MB layer, distinct configs) into the ' +
    "harness's containerd through CRI, untimed, as sync-memory does. The Kubernetes API test " +
    "server (deploy/'s CRDs and RBAC) runs in the benchmark process; three Nodes carry labels " +
    'that PrePulls of 100 and of the other 400 images (verify Registry, pin: the defaults) ' +
    'select, so a node tracks 0, 100 or 500 images (each also the sandbox image) while every ' +
    'agent holds all the PrePulls in its informer. Each agent is a fresh real process, `node ' +
    'bin/prepull.js agent --kubeconfig … --node-name … --runtime-endpoint unix://… ' +
    '--insecure-registry … --metrics-address 127.0.0.1:0`, as the shipped ServiceAccount: what ' +
    '`bin/prepull.js` runs (dist/ when built, else src/ through Node’s type stripping) is what ' +
    'is measured. One warm-up agent tracking 500 images runs alone first (its start-up is ' +
    'reported: it verifies and pins every image). Then each round starts the three agents and ' +
    "the baseline, a bare Node process (`node -e 'setInterval(()=>{},1000)'`, the same binary), " +
    'together: they share the machine at the same moment, and a process’s RSS does not depend ' +
    'on its neighbours with this much free memory. An agent counts from the moment its ' +
    'NodeImageCache shows every image Present and the agents have made no API request but ' +
    'watches for 2 s (each round starts with the NodeImageCaches deleted, so a status left by ' +
    'the last round cannot count); `/metrics` is then scraped once, as Prometheus would. After 4 s of quiet, ' +
    '5 readings of VmRSS 0.5 s apart give the sample (their median); CPU is the time its threads ' +
    'ran over those 6 s, from /proc/<pid>/task/*/schedstat (nanoseconds). Ratios are per round. No flags change V8’s heap limits. 2 ' +
    'rounds; --quick: 0, 20 and 50 images, no warm-up, 2 s of quiet, 1 round.',
  async run(ctx) {
    const total = ctx.quick ? 50 : 500;
    const some = ctx.quick ? 20 : 100;
    const rounds = ctx.quick ? 1 : 2;
    const settleMs = ctx.quick ? 2_000 : 4_000;
    ctx.recordEnvironment('prepull CLI', cliBuild());
    const harness = await ctx.harness({ registries: ['plain'], docker: false });
    const info = harness.info;
    const plain = info.registries.plain!;
    const containerd = info.containerd!;

    const seeding = performance.now();
    const { refs } = await pushSmallImages(plain, 'bench/agent-memory', total);
    const pushed = performance.now();
    const cri = new KubeletCri(containerd.socket);
    try {
      await cri.pullImage(containerd.sandboxImage);
      await pullAll(cri, refs);
    } finally {
      cri.close();
    }
    ctx.log(
      `${total} images pushed in ${((pushed - seeding) / 1000).toFixed(1)} s, loaded in ` +
        `${((performance.now() - pushed) / 1000).toFixed(1)} s`,
    );

    const { server, kubeconfig, adminKubeconfig } = await startApiServer();
    const admin = KubeClient.load(adminKubeconfig);
    const rest = refs.slice(some);
    server.apply(
      nodeObject('memory-0'),
      nodeObject(`memory-${some}`, { [LABEL_A]: 'true' }),
      nodeObject(`memory-${total}`, { [LABEL_A]: 'true', [LABEL_B]: 'true' }),
      prePullObject('memory-a', refs.slice(0, some), { nodeSelector: { [LABEL_A]: 'true' } }),
      ...Array.from({ length: Math.ceil(rest.length / MAX_IMAGES_PER_PREPULL) }, (_, i) =>
        prePullObject(
          `memory-b-${i}`,
          rest.slice(i * MAX_IMAGES_PER_PREPULL, (i + 1) * MAX_IMAGES_PER_PREPULL),
          { nodeSelector: { [LABEL_B]: 'true' } },
        ),
      ),
    );
    const tracked: Record<string, readonly string[]> = {
      'memory-0': [containerd.sandboxImage],
      [`memory-${some}`]: [containerd.sandboxImage, ...refs.slice(0, some)],
      [`memory-${total}`]: [containerd.sandboxImage, ...refs],
    };

    const launch = (node: string): AgentProcess =>
      new AgentProcess([
        '--kubeconfig',
        kubeconfig,
        '--node-name',
        node,
        '--runtime-endpoint',
        `unix://${containerd.socket}`,
        '--insecure-registry',
        plain.host,
        '--metrics-address',
        '127.0.0.1:0',
      ]);
    /** Waits until `agent`'s NodeImageCache shows its images settled; returns seconds from `since`. */
    const settled = async (agent: AgentProcess, node: string, since: number): Promise<number> => {
      const url = await agent.metricsUrl();
      await waitUntil(
        () => {
          if (!agent.running) throw new Error(`agent exited: ${agent.stderr.slice(-2000)}`);
          return showsSettled(server, node, tracked[node]!);
        },
        `${node}: every image Present`,
        120_000,
        50,
      );
      const seconds = (performance.now() - since) / 1000;
      await quiet(server, 2000);
      const reasons = new Map<string, number>();
      for (const image of nicStatus(server, node)?.images ?? []) {
        const key = `${image.state}/${image.reason ?? ''}`;
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      }
      ctx.log(`${node}: ${[...reasons].map(([k, n]) => `${k} × ${n}`).join(', ')}`);
      await scrape(url);
      return seconds;
    };

    let firstStart: number | undefined;
    const samples: Quiet[][] = [[], [], [], []];
    try {
      // Warm-up, alone and untimed but for its start-up: verifies and pins every image once.
      // --quick goes without: its figures are not published.
      if (!ctx.quick) {
        const warm = launch(`memory-${total}`);
        try {
          firstStart = await settled(warm, `memory-${total}`, performance.now());
        } finally {
          await warm.stop();
        }
        ctx.log(`warm-up: ${total} images Present ${firstStart.toFixed(1)} s after spawn`);
      }
      const nodes = ['memory-0', `memory-${some}`, `memory-${total}`];
      for (let round = 0; round < rounds; round++) {
        // A NodeImageCache left by the last round would show the images Present at once.
        for (const node of [...nodes, `memory-${total}`])
          await admin
            .request('DELETE', `/apis/prepull.dev/v1alpha1/nodeimagecaches/${node}`)
            .catch(() => undefined);
        const since = performance.now();
        const agents = nodes.map(launch);
        const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1000)'], {
          stdio: 'ignore',
        });
        const bareExited = new Promise((resolve) => bare.once('exit', resolve));
        try {
          const ready = await Promise.all(agents.map((a, i) => settled(a, nodes[i]!, since)));
          firstStart ??= ready[2];
          ctx.log(`round ${round}: settled after ${ready.map((r) => r.toFixed(1)).join(', ')} s`);
          const quiet = await Promise.all([
            ...agents.map((a) => measureQuiet(a.pid, settleMs)),
            measureQuiet(bare.pid!, settleMs),
          ]);
          quiet.forEach((q, i) => samples[i]!.push(q));
        } finally {
          await Promise.all(agents.map((a) => a.stop()));
          bare.kill('SIGTERM');
          await bareExited;
        }
      }
    } finally {
      await server.stop();
    }
    const [zero, hundred, all, base] = samples as [Quiet[], Quiet[], Quiet[], Quiet[]];
    const rss = (q: Quiet[]): number[] => q.map((x) => x.rssMiB);
    const cpu = (q: Quiet[]): number[] => q.map((x) => x.millicores);
    const quickNote = ctx.quick
      ? `quick mode: ${some} and ${total} images, 1 round, no warm-up (the start-up is round 0's, three agents at once)`
      : undefined;
    const withQuick = (f: Figure): Figure =>
      quickNote === undefined
        ? f
        : { ...f, note: f.note === undefined ? quickNote : `${f.note}; ${quickNote}` };
    const BASELINE = "bare Node 24 process (`node -e 'setInterval(()=>{},1000)'`), same round";
    const figures: Figure[] = [
      {
        id: 'agent.memory.all.rssMiB',
        label: `RSS of \`agent\` tracking ${total} images, steady state`,
        unit: 'MiB',
        ...summarize(rss(all)),
        goal: { op: '<=', value: 96, source: 'issue 7' },
      },
      {
        id: 'agent.memory.all.ratio',
        label: `RSS of \`agent\` tracking ${total} images ÷ bare Node process`,
        unit: '×',
        ...summarize(rss(all).map((v, i) => v / base[i]!.rssMiB)),
        baseline: BASELINE,
        chart: `agent RSS, ${total} images ÷ bare Node`,
      },
      {
        id: 'agent.memory.some.rssMiB',
        label: `RSS of \`agent\` tracking ${some} images, steady state`,
        unit: 'MiB',
        ...summarize(rss(hundred)),
      },
      {
        id: 'agent.memory.zero.rssMiB',
        label: 'RSS of `agent` tracking no PrePull image (the sandbox image only), steady state',
        unit: 'MiB',
        ...summarize(rss(zero)),
      },
      {
        id: 'agent.memory.zero.ratio',
        label: 'RSS of `agent` tracking no PrePull image ÷ bare Node process',
        unit: '×',
        ...summarize(rss(zero).map((v, i) => v / base[i]!.rssMiB)),
        baseline: BASELINE,
        chart: 'agent RSS, no images ÷ bare Node',
      },
      {
        id: 'agent.memory.bare.rssMiB',
        label: 'RSS of a bare Node 24 process',
        unit: 'MiB',
        ...summarize(rss(base)),
      },
      {
        id: 'agent.cpu.all.millicores',
        label: `CPU of \`agent\` tracking ${total} images, steady state`,
        unit: 'millicores',
        ...summarize(cpu(all)),
        note:
          `bare Node process: ${summarize(cpu(base)).median.toFixed(1)} millicores; ${some} ` +
          `images: ${summarize(cpu(hundred)).median.toFixed(1)}; none: ` +
          `${summarize(cpu(zero)).median.toFixed(1)}; each over a ` +
          `${(settleMs + (READINGS - 1) * READING_INTERVAL_MS) / 1000} s window, counted to the ` +
          "nanosecond from the threads' /proc schedstat (not in 10 ms ticks)",
      },
      {
        id: 'agent.startup.all.seconds',
        label: `first \`agent\` start → NodeImageCache shows all ${total} images Present`,
        unit: 's',
        ...summarize([firstStart ?? 0]),
        note: 'the warm-up agent, alone: the images are present; it verifies every tag against the registry and pins them',
      },
    ];
    return figures.map(withQuick);
  },
};

export default benchmark;
