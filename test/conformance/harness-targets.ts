// Conformance targets on the real-component harness: containerd through CRI (with its native
// extras) and Docker Engine. Ordinary cases run on the shared harness; disruptive ones get a
// private harness whose registry, runtime and socket the hooks may break. Removals "behind the
// adapter's back" go through other clients — the harness's kubelet-like CRI client, dockerode —
// and containerd's pin label is read with `ctr`, so no check relies on the adapter under test.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { RegistryCredential } from '../../src/image/credential.ts';
import { containerdRuntime } from '../../src/runtime/containerd/runtime.ts';
import { DockerRuntime } from '../../src/runtime/docker/runtime.ts';
import type { ImageRuntime } from '../../src/runtime/types.ts';
import { KubeletCri } from '../harness/cri.ts';
import * as images from '../harness/images.ts';
import type { BuiltImage, BuiltIndex, Layer } from '../harness/images.ts';
import {
  BASIC_AUTH,
  pushImage,
  sharedHarness,
  startHarness,
  type Harness,
  type HarnessInfo,
} from '../harness/index.ts';
import type { ConformanceSetup, ConformanceTarget } from '../../src/runtime/testing/conformance.ts';

const run = promisify(execFile);

/** ~300 MB in 7 layers (a marker layer and six fillers), as the issue asks. */
const LARGE_IMAGE = { layers: 7, layerBytes: 50 * 1024 * 1024 };

type Kind = 'containerd' | 'docker';
type Target = ConformanceTarget<BuiltImage, BuiltIndex>;

interface Parts {
  info: HarnessInfo;
  harness?: Harness;
}

function credentials(key: string, password: string): RegistryCredential {
  return new RegistryCredential({
    source: 'harness',
    key,
    username: BASIC_AUTH.username,
    password,
  });
}

function baseTarget(kind: Kind, parts: Parts, runtime: ImageRuntime): Target {
  const { info } = parts;
  const basicHost = info.registries.basic?.host ?? 'no-basic-registry';
  return {
    runtime,
    expected:
      kind === 'containerd'
        ? { pin: true, deletionEvents: true, progress: true }
        : { pin: false, deletionEvents: true, progress: true },
    ...(kind === 'containerd' ? { expectedSandboxImage: info.containerd!.sandboxImage } : {}),
    largeImage: LARGE_IMAGE,
    async publish(repository, tag, image, registry = 'plain') {
      const endpoint = info.registries[registry];
      if (endpoint === undefined) throw new Error(`this harness has no ${registry} registry`);
      const { digest } = await pushImage(endpoint, repository, tag, image);
      const name = `${endpoint.host}/${repository}`;
      return { ref: `${name}:${tag}`, digestRef: `${name}@${digest}`, digest, repository: name };
    },
    credentials: credentials(basicHost, BASIC_AUTH.password),
    wrongCredentials: credentials(basicHost, 'wrong-Pa55-for-the-test'),
    async removeBehindBack(ref) {
      if (kind === 'containerd') {
        const cri = new KubeletCri(info.containerd!.socket);
        try {
          await cri.removeImage(ref);
        } finally {
          cri.close();
        }
      } else {
        await new Docker({ socketPath: info.docker!.socket }).getImage(ref).remove();
      }
    },
    async useImage(ref) {
      if (kind === 'docker') {
        const docker = new Docker({ socketPath: info.docker!.socket });
        // Created, not started: the conformance images are not runnable, and Docker counts a
        // created container as using its image all the same.
        const container = await docker.createContainer({ Image: ref, Cmd: ['/bin/true'] });
        return async () => {
          await container.remove({ force: true });
        };
      }
      // As kubelet: a pod sandbox (running the sandbox image), then the container in it.
      const cri = new KubeletCri(info.containerd!.socket);
      const name = `in-use-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
      try {
        const pod = await cri.startPod({
          image: ref,
          name,
          workDir: info.workDir,
          cgroupParent: info.containerd!.cgroupParent,
          command: ['/bin/true'],
          start: false,
        });
        return async () => {
          try {
            await pod.remove();
          } finally {
            cri.close();
          }
        };
      } catch (error) {
        cri.close();
        throw error;
      }
    },
    async pinnedNatively(ref) {
      if (kind === 'docker') return undefined;
      const { stdout } = await run('ctr', [
        '--address',
        info.containerd!.socket,
        '--namespace',
        info.containerd!.namespace,
        'images',
        'ls',
        '-q',
        `name==${JSON.stringify(ref)},labels."io.cri-containerd.pinned"==pinned`,
      ]);
      return stdout.trim() === ref;
    },
    async unpinBehindBack(ref) {
      if (kind === 'docker') throw new Error('Docker Engine has no pins to take off');
      // As the operator in the issue did: the label off the tag's record only.
      await run('ctr', [
        '--address',
        info.containerd!.socket,
        '--namespace',
        info.containerd!.namespace,
        'images',
        'label',
        ref,
        'io.cri-containerd.pinned=',
      ]);
    },
    async close() {
      await runtime.close();
      await parts.harness?.stop();
    },
  };
}

function adapter(kind: Kind, info: HarnessInfo): ImageRuntime {
  return kind === 'containerd'
    ? containerdRuntime({ endpoint: `unix://${info.containerd!.socket}` })
    : new DockerRuntime({ endpoint: `unix://${info.docker!.socket}` });
}

function isolatedTarget(kind: Kind, harness: Harness): Target {
  const info = harness.info;
  const target = baseTarget(kind, { info, harness }, adapter(kind, info));
  const daemon = kind === 'containerd' ? harness.containerd! : harness.docker!;
  const socket = kind === 'containerd' ? info.containerd!.socket : info.docker!.socket;
  return {
    ...target,
    async breakRegistry() {
      const registry = harness.registry('plain');
      await registry.stop({ kill: true });
      return () => registry.start();
    },
    async vanishSocket() {
      await daemon.stop();
      rmSync(socket, { force: true });
      return () => daemon.start();
    },
    async restartRuntime() {
      await daemon.stop();
      await daemon.start();
    },
  };
}

export function harnessSetup(kind: Kind): ConformanceSetup<Layer, BuiltImage, BuiltIndex> {
  return {
    images,
    shared() {
      const info = sharedHarness();
      return Promise.resolve(baseTarget(kind, { info }, adapter(kind, info)));
    },
    async isolated() {
      const harness = await startHarness({
        registries: ['plain'],
        containerd: kind === 'containerd',
        docker: kind === 'docker',
      });
      return isolatedTarget(kind, harness);
    },
  };
}
