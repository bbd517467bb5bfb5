// The node's runtime as another client sees it — containerd through the harness's kubelet-like
// CRI client (and `ctr` for the pin label), Docker Engine through dockerode — so tests of prepull
// check its claims with tools that share no code with its adapters, and can remove images behind
// its back as kubelet's GC or an operator would.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { KubeletCri } from './cri.ts';
import type { HarnessInfo } from './index.ts';

const run = promisify(execFile);

export type RuntimeKind = 'containerd' | 'docker';

/** What the runtime holds under a reference. */
export interface ProbedImage {
  id: string;
  repoDigests: string[];
}

export interface RuntimeProbe {
  kind: RuntimeKind;
  /** `unix:///…`, for --runtime-endpoint. */
  endpoint: string;
  /** The sandbox image prepull also requires (containerd), or undefined. */
  sandboxImage: string | undefined;
  status(ref: string): Promise<ProbedImage | undefined>;
  /** Removes the image `ref` names; an absent image is not an error. */
  remove(ref: string): Promise<void>;
  /** Pulls through the runtime itself (to prepare a node), with no credentials. */
  pull(ref: string): Promise<void>;
  /** Whether the record `ref` carries containerd's pin label; undefined where there is none. */
  pinnedLabel(ref: string): Promise<boolean | undefined>;
  close(): void;
}

function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number } | null)?.statusCode === 404;
}

function containerdProbe(info: HarnessInfo): RuntimeProbe {
  const endpoint = info.containerd;
  if (endpoint === undefined) throw new Error('this harness has no containerd');
  const cri = new KubeletCri(endpoint.socket);
  return {
    kind: 'containerd',
    endpoint: `unix://${endpoint.socket}`,
    sandboxImage: endpoint.sandboxImage,
    async status(ref) {
      const image = await cri.imageStatus(ref);
      return image === undefined ? undefined : { id: image.id, repoDigests: image.repo_digests };
    },
    async remove(ref) {
      if ((await cri.imageStatus(ref)) !== undefined) await cri.removeImage(ref);
    },
    async pull(ref) {
      await cri.pullImage(ref);
    },
    async pinnedLabel(ref) {
      const { stdout } = await run('ctr', [
        '--address',
        endpoint.socket,
        '--namespace',
        endpoint.namespace,
        'images',
        'ls',
        '-q',
        `name==${JSON.stringify(ref)},labels."io.cri-containerd.pinned"==pinned`,
      ]);
      return stdout.trim() === ref;
    },
    close() {
      cri.close();
    },
  };
}

function dockerProbe(info: HarnessInfo): RuntimeProbe {
  const endpoint = info.docker;
  if (endpoint === undefined) throw new Error('this harness has no Docker Engine');
  const docker = new Docker({ socketPath: endpoint.socket });
  return {
    kind: 'docker',
    endpoint: `unix://${endpoint.socket}`,
    sandboxImage: undefined,
    async status(ref) {
      try {
        const image = await docker.getImage(ref).inspect();
        return { id: image.Id, repoDigests: image.RepoDigests };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async remove(ref) {
      try {
        await docker.getImage(ref).remove();
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    },
    async pull(ref) {
      const stream = await docker.pull(ref);
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(stream, (error: Error | null) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
    pinnedLabel() {
      return Promise.resolve(undefined);
    },
    close() {
      // dockerode keeps no connection open between requests.
    },
  };
}

export function runtimeProbe(kind: RuntimeKind, info: HarnessInfo): RuntimeProbe {
  return kind === 'containerd' ? containerdProbe(info) : dockerProbe(info);
}
