// A CRI client that acts as kubelet does for the tests: pull, image status, and the calls kubelet
// makes to start a Pod whose image is already on the node (RunPodSandbox, CreateContainer,
// StartContainer). It is test tooling, written apart from the product's CRI adapter so each
// checks the other.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('./cri/kubelet.proto', import.meta.url));

type Unary = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => void;

type Client = grpc.Client & Record<string, Unary>;

export interface CriImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: string;
  pinned: boolean;
}

export interface RunResult {
  exitCode: number;
  /** What the container wrote to stdout and stderr, from the CRI log file. */
  output: string;
  sandboxId: string;
  containerId: string;
}

export interface PodOptions {
  image: string;
  name: string;
  workDir: string;
  cgroupParent: string;
  command?: string[];
  /** Only create the container, as a Pod whose container has not started (default: start it). */
  start?: boolean;
}

export interface Pod {
  sandboxId: string;
  containerId: string;
  /** Waits for the container to exit; its exit code and output. */
  wait(timeoutMs?: number): Promise<RunResult>;
  /** StopPodSandbox then RemovePodSandbox, as kubelet does. */
  remove(): Promise<void>;
}

export interface Auth {
  username?: string;
  password?: string;
}

/** Turns CRI's log file format (`<time> <stream> <P|F> <text>`) back into the written text. */
export function parseCriLog(text: string): string {
  let out = '';
  for (const line of text.split('\n')) {
    const match = /^\S+ (?:stdout|stderr) ([PF]) (.*)$/.exec(line);
    if (!match) continue;
    out += match[2] ?? '';
    if (match[1] === 'F') out += '\n';
  }
  return out;
}

export class KubeletCri {
  readonly socket: string;
  private readonly runtime: Client;
  private readonly images: Client;

  constructor(socket: string) {
    this.socket = socket;
    const definition = protoLoader.loadSync(PROTO, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: Record<string, grpc.ServiceClientConstructor> };
    };
    const options = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    const credentials = grpc.credentials.createInsecure();
    const RuntimeService = pkg.runtime.v1.RuntimeService!;
    const ImageService = pkg.runtime.v1.ImageService!;
    this.runtime = new RuntimeService(`unix://${socket}`, credentials, options) as Client;
    this.images = new ImageService(`unix://${socket}`, credentials, options) as Client;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  private call<T>(client: Client, method: string, request: object, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const fn = client[method];
      if (fn === undefined) {
        reject(new Error(`no CRI method ${method}`));
        return;
      }
      fn.call(
        client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error, response) => {
          if (error) reject(error);
          else resolve(response as T);
        },
      );
    });
  }

  version(timeoutMs = 2000): Promise<{ runtime_name: string; runtime_version: string }> {
    return this.call(this.runtime, 'Version', { version: 'v1' }, timeoutMs);
  }

  async statusInfo(): Promise<Record<string, string>> {
    const response = await this.call<{ info: Record<string, string> }>(this.runtime, 'Status', {
      verbose: true,
    });
    return response.info;
  }

  async pullImage(image: string, auth?: Auth, timeoutMs = 300_000): Promise<string> {
    const response = await this.call<{ image_ref: string }>(
      this.images,
      'PullImage',
      { image: { image }, ...(auth ? { auth } : {}) },
      timeoutMs,
    );
    return response.image_ref;
  }

  async imageStatus(image: string): Promise<CriImage | undefined> {
    const response = await this.call<{ image: CriImage | null }>(this.images, 'ImageStatus', {
      image: { image },
    });
    return response.image ?? undefined;
  }

  async listImages(): Promise<CriImage[]> {
    const response = await this.call<{ images: CriImage[] }>(this.images, 'ListImages', {});
    return response.images;
  }

  async removeImage(image: string): Promise<void> {
    await this.call(this.images, 'RemoveImage', { image: { image } });
  }

  /**
   * Starts `image` the way kubelet starts a Pod with imagePullPolicy Never: no pull, a pod
   * sandbox in the node's network namespace, then one container. `workDir` receives the pod's
   * log directory; `cgroupParent` keeps the pod's cgroups where the harness can clean them up.
   */
  async startPod(options: PodOptions): Promise<Pod> {
    const logDirectory = join(options.workDir, 'pods', options.name);
    mkdirSync(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: {
        name: options.name,
        uid: `uid-${options.name}`,
        namespace: 'harness',
        attempt: 0,
      },
      log_directory: logDirectory,
      linux: {
        cgroup_parent: options.cgroupParent,
        security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
      },
    };
    const { pod_sandbox_id: sandboxId } = await this.call<{ pod_sandbox_id: string }>(
      this.runtime,
      'RunPodSandbox',
      { config: sandboxConfig },
      120_000,
    );
    const remove = async (): Promise<void> => {
      await this.call(this.runtime, 'StopPodSandbox', { pod_sandbox_id: sandboxId });
      await this.call(this.runtime, 'RemovePodSandbox', { pod_sandbox_id: sandboxId });
    };
    try {
      const { container_id: containerId } = await this.call<{ container_id: string }>(
        this.runtime,
        'CreateContainer',
        {
          pod_sandbox_id: sandboxId,
          config: {
            metadata: { name: 'main', attempt: 0 },
            image: { image: options.image },
            ...(options.command ? { command: options.command } : {}),
            log_path: 'main.log',
            linux: {
              security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER' } },
            },
          },
          sandbox_config: sandboxConfig,
        },
      );
      if (options.start !== false) {
        await this.call(this.runtime, 'StartContainer', { container_id: containerId });
      }
      const wait = async (timeoutMs = 30_000): Promise<RunResult> => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { status } = await this.call<{ status: { state: string; exit_code: number } }>(
            this.runtime,
            'ContainerStatus',
            { container_id: containerId },
          );
          if (status.state === 'CONTAINER_EXITED') {
            const output = parseCriLog(readFileSync(join(logDirectory, 'main.log'), 'utf8'));
            return { exitCode: status.exit_code, output, sandboxId, containerId };
          }
          if (Date.now() > deadline) {
            throw new Error(
              `container in pod ${options.name} still ${status.state} after ${timeoutMs} ms`,
            );
          }
          await sleep(100);
        }
      };
      return { sandboxId, containerId, wait, remove };
    } catch (error) {
      await remove();
      throw error;
    }
  }

  /** startPod, wait for the container to exit, remove the pod; returns exit code and output. */
  async runPod(options: PodOptions & { timeoutMs?: number }): Promise<RunResult> {
    const pod = await this.startPod(options);
    try {
      return await pod.wait(options.timeoutMs);
    } finally {
      await pod.remove();
    }
  }
}
