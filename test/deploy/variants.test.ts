// The install variants: deploy/components/ holds one kustomize Component per container runtime.
// Each is rendered as a user installs it — a kustomization of their own with deploy/ as its
// resource and the component — by the real `kubectl kustomize`, and every document it prints
// goes through the schema checks deploy/'s files go through (manifests.ts). Then what each must
// say: its runtime's socket and no other, and its image filesystem, read-only at their host
// paths, the agent told that socket, and nothing else of deploy/ changed. deploy/ itself must still render as it is.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { parseAgentArgs } from '../../src/config/agent.ts';
import { DEFAULT_SOCKETS } from '../../src/runtime/detect.ts';
import { type KubectlRun, kubectlMissing, kustomize } from '../harness/kubectl.ts';
import {
  DEPLOY,
  ROOT,
  expandArgs,
  isComponent,
  parseManifests,
  readManifests,
  typeCheck,
  typeKey,
  validateModels,
  type Doc,
  type Manifest,
} from './manifests.ts';

interface Variant {
  /** Its directory in deploy/components/, and the value of the prepull.dev/runtime annotation. */
  component: string;
  /** The runtime's socket on the node (docs/runtimes.md). */
  socket: string;
  /** What is mounted: the socket's directory, or the socket itself where it sits in /run. */
  hostPath: string;
  type: 'Directory' | 'Socket';
  /** `--runtime`: how the agent talks to it. */
  protocol: 'cri' | 'docker';
  /** The runtime's root on the image filesystem, for the disk guard's statfs (ADR 0019). */
  imageFs: string;
}

const VARIANTS: readonly Variant[] = [
  {
    component: 'containerd',
    socket: '/run/containerd/containerd.sock',
    hostPath: '/run/containerd',
    type: 'Directory',
    protocol: 'cri',
    imageFs: '/var/lib/containerd',
  },
  {
    component: 'k3s',
    socket: '/run/k3s/containerd/containerd.sock',
    hostPath: '/run/k3s/containerd',
    type: 'Directory',
    protocol: 'cri',
    imageFs: '/var/lib/rancher/k3s/agent/containerd',
  },
  {
    component: 'rke2',
    socket: '/run/k3s/containerd/containerd.sock',
    hostPath: '/run/k3s/containerd',
    type: 'Directory',
    protocol: 'cri',
    imageFs: '/var/lib/rancher/rke2/agent/containerd',
  },
  {
    component: 'crio',
    socket: '/run/crio/crio.sock',
    hostPath: '/run/crio',
    type: 'Directory',
    protocol: 'cri',
    imageFs: '/var/lib/containers/storage',
  },
  // kubelet talks CRI to cri-dockerd; so does the agent (docs/adr/0015-install-variants.md).
  {
    component: 'cri-dockerd',
    socket: '/run/cri-dockerd.sock',
    hostPath: '/run/cri-dockerd.sock',
    type: 'Socket',
    protocol: 'cri',
    imageFs: '/var/lib/docker',
  },
  {
    component: 'docker',
    socket: '/var/run/docker.sock',
    hostPath: '/var/run/docker.sock',
    type: 'Socket',
    protocol: 'docker',
    imageFs: '/var/lib/docker',
  },
];

const work = mkdtempSync(join(tmpdir(), 'prepull-variants-'));

/** Renders deploy/ with `components`, from a kustomization of the user's beside it. */
async function renderWith(name: string, components: readonly string[]): Promise<KubectlRun> {
  const dir = join(work, name);
  mkdirSync(dir);
  // kustomize takes no absolute path for a resource.
  const path = (to: string): string => JSON.stringify(relative(dir, to));
  const lines = [
    'apiVersion: kustomize.config.k8s.io/v1beta1',
    'kind: Kustomization',
    `resources: [${path(DEPLOY)}]`,
    `components: [${components.map((c) => path(join(DEPLOY, 'components', c))).join(', ')}]`,
  ];
  writeFileSync(join(dir, 'kustomization.yaml'), `${lines.join('\n')}\n`);
  return kustomize(dir);
}

function rendered(what: string, run: KubectlRun): Manifest[] {
  if (run.code !== 0) throw new Error(`kubectl kustomize ${what} failed: ${run.stderr.trim()}`);
  return parseManifests(`kubectl kustomize ${what}`, run.stdout);
}

function id(doc: Doc): string {
  const meta = (doc.metadata ?? {}) as { name?: string; namespace?: string };
  return `${typeKey(doc)} ${meta.namespace ?? ''}/${meta.name ?? ''}`;
}

function byId(manifests: readonly Manifest[]): Map<string, Doc> {
  return new Map(manifests.map((m) => [id(m.doc), m.doc]));
}

function daemonSet(manifests: readonly Manifest[]): IDaemonSet {
  const found = manifests.filter((m) => m.doc.kind === 'DaemonSet');
  if (found.length !== 1) throw new Error(`expected one DaemonSet, found ${found.length}`);
  return found[0]!.doc as unknown as IDaemonSet;
}

/** The DaemonSet without what a runtime component may change. */
function withoutRuntime(ds: IDaemonSet): Doc {
  const copy = structuredClone(ds);
  delete copy.metadata!.annotations!['prepull.dev/runtime'];
  const pod = copy.spec!.template.spec!;
  delete pod.volumes;
  delete pod.containers[0]!.volumeMounts;
  delete pod.containers[0]!.args;
  return copy as unknown as Doc;
}

let base: Manifest[] = [];
const variants = new Map<string, Manifest[]>();

beforeAll(async () => {
  // The real kubectl is what this proves: without it every test here fails, in CI and out.
  const missing = kubectlMissing();
  if (missing !== undefined) {
    throw new Error(`${missing}: install kubectl, or point KUBECTL at one`);
  }
  const [deploy, ...each] = await Promise.all([
    kustomize(DEPLOY),
    ...VARIANTS.map((v) => renderWith(v.component, [v.component])),
  ]);
  base = rendered('deploy/', deploy);
  VARIANTS.forEach((v, i) => {
    variants.set(v.component, rendered(`with components/${v.component}`, each[i]!));
  });
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('deploy/ rendered by kubectl kustomize', () => {
  it('is the files its kustomization lists, unchanged', () => {
    const kustomization = readManifests().find((m) => m.file === 'deploy/kustomization.yaml')!;
    const listed = (kustomization.doc.resources as string[]).map((r) => posix.join('deploy', r));
    const files = readManifests().filter((m) => listed.includes(m.file));
    expect(base.length).toBe(files.length);
    expect(byId(base)).toEqual(byId(files));
  });

  it('runs the agent on Linux nodes, probing the runtimes, with a start-up probe', () => {
    const ds = daemonSet(base);
    const pod = ds.spec!.template.spec!;
    expect(ds.metadata?.annotations?.['prepull.dev/runtime']).toBe('detect');
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.containers[0]!.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(pod.containers[0]!.args).not.toContainEqual(
      expect.stringMatching(/^--runtime(-endpoint)?\b/),
    );
  });
});

describe('deploy/components/', () => {
  it('holds one component per runtime socket the agent knows, each tested here', () => {
    const dirs = readdirSync(join(DEPLOY, 'components')).sort();
    expect(dirs).toEqual(VARIANTS.map((v) => v.component).sort());
    for (const dir of dirs) {
      const files = readdirSync(join(DEPLOY, 'components', dir));
      expect({ dir, files }).toEqual({ dir, files: ['kustomization.yaml'] });
    }
    expect([...new Set(VARIANTS.map((v) => v.socket))].sort()).toEqual([...DEFAULT_SOCKETS].sort());
  });

  it('renders documents that pass the Kubernetes schemas and have no unknown field', () => {
    const all = [base, ...variants.values()].flat();
    expect(all.length).toBe(base.length * (VARIANTS.length + 1));
    expect(validateModels(all)).toEqual([]);
    // The components change only the DaemonSet (tested below): every other document is checked
    // once, every variant's DaemonSet on its own.
    const seen = new Set<string>();
    const distinct = all.filter((m) => {
      const key = JSON.stringify(m.doc);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    expect(distinct.filter((m) => m.doc.kind === 'DaemonSet')).toHaveLength(VARIANTS.length + 1);
    expect(typeCheck(distinct)).toEqual([]);
  }, 120_000);

  it('refuses two runtimes in one kustomization', async () => {
    const run = await renderWith('two-runtimes', ['containerd', 'crio']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('testing value /metadata/annotations/prepull.dev~1runtime failed');
  });

  it('is shown in docs/install.md, each with its socket', () => {
    const install = readFileSync(join(ROOT, 'docs/install.md'), 'utf8').split('\n');
    for (const v of VARIANTS) {
      const row = install.find(
        (line) =>
          line.startsWith('|') &&
          line.includes(`\`deploy/components/${v.component}\``) &&
          line.includes(`\`${v.socket}\``),
      );
      expect({ component: v.component, row: row !== undefined }).toEqual({
        component: v.component,
        row: true,
      });
    }
  });

  describe.each(VARIANTS)('$component', (v) => {
    const manifests = (): Manifest[] => variants.get(v.component)!;

    it('changes nothing of deploy/ but the agent’s runtime: volumes, mounts, flags', () => {
      const mine = byId(manifests());
      const theirs = byId(base);
      expect([...mine.keys()].sort()).toEqual([...theirs.keys()].sort());
      for (const [key, doc] of theirs) {
        if (doc.kind === 'DaemonSet') continue;
        expect({ key, doc: mine.get(key) }).toEqual({ key, doc });
      }
      expect(withoutRuntime(daemonSet(manifests()))).toEqual(withoutRuntime(daemonSet(base)));
      expect(daemonSet(manifests()).metadata?.annotations?.['prepull.dev/runtime']).toBe(
        v.component,
      );
    });

    it(`mounts ${v.hostPath} and the image filesystem ${v.imageFs} read-only at their host paths, and no other host path`, () => {
      const pod = daemonSet(manifests()).spec!.template.spec!;
      const hostPaths = (pod.volumes ?? []).filter((volume) => volume.hostPath !== undefined);
      const byPath = (a: { path: string }, b: { path: string }): number =>
        a.path.localeCompare(b.path);
      expect(hostPaths.map((volume) => volume.hostPath!).sort(byPath)).toEqual(
        [
          { path: v.hostPath, type: v.type },
          { path: v.imageFs, type: 'Directory' },
        ].sort(byPath),
      );
      const mounts = pod.containers[0]!.volumeMounts ?? [];
      for (const volume of hostPaths) {
        expect(mounts.filter((m) => m.name === volume.name)).toEqual([
          { name: volume.name, mountPath: volume.hostPath!.path, readOnly: true },
        ]);
      }
      // Everything else mounted is the base's own scratch space.
      const names = new Set(hostPaths.map((volume) => volume.name));
      const others = mounts.filter((m) => !names.has(m.name));
      expect(others.map((m) => m.mountPath)).toEqual(['/tmp']);
      expect(pod.volumes!.filter((volume) => volume.hostPath === undefined)).toEqual(
        daemonSet(base).spec!.template.spec!.volumes!.filter((x) => x.hostPath === undefined),
      );
    });

    it(`tells the agent ${v.socket}, inside that mount, and --runtime ${v.protocol}`, () => {
      const ds = daemonSet(manifests());
      const agent = ds.spec!.template.spec!.containers[0]!;
      const baseArgs = daemonSet(base).spec!.template.spec!.containers[0]!.args!;
      expect(agent.args).toEqual([
        ...baseArgs,
        `--runtime-endpoint=unix://${v.socket}`,
        `--runtime=${v.protocol}`,
      ]);
      const args = expandArgs(agent.args!.slice(1), { POD_IP: '10.244.1.7' });
      const config = parseAgentArgs(args, { NODE_NAME: 'node-a' });
      if (config === 'help') throw new Error('the DaemonSet asks for help');
      expect(config).toMatchObject({
        runtimeEndpoint: `unix://${v.socket}`,
        runtime: v.protocol,
      });
      // The socket the flag names is the one mounted, or sits in the directory mounted.
      const socket = config.runtimeEndpoint!.slice('unix://'.length);
      const mount = agent.volumeMounts!.find(
        (m) => m.mountPath !== '/tmp' && m.name !== 'imagefs',
      )!.mountPath;
      expect(socket === mount || posix.dirname(socket) === mount).toBe(true);
      expect(DEFAULT_SOCKETS).toContain(socket);
    });

    it('keeps the base’s Linux node selector and start-up probe', () => {
      const pod = daemonSet(manifests()).spec!.template.spec!;
      expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      expect(pod.containers[0]!.startupProbe).toEqual(
        daemonSet(base).spec!.template.spec!.containers[0]!.startupProbe,
      );
      expect(pod.containers[0]!.startupProbe?.httpGet).toEqual({
        path: '/healthz',
        port: 'metrics',
      });
    });
  });
});

it('the components are kustomize Components, left out of manifests.test.ts', () => {
  const components = readManifests().filter((m) => isComponent(m.file));
  expect(components.map((m) => `${m.file} ${typeKey(m.doc)}`)).toEqual(
    VARIANTS.map(
      (v) =>
        `deploy/components/${v.component}/kustomization.yaml kustomize.config.k8s.io/v1alpha1/Component`,
    ).sort(),
  );
});
