// ImageRuntime over the Docker Engine API (dockerode), for nodes where kubelet runs on Docker
// through cri-dockerd, and for `prepull sync` on plain Docker hosts. Docker reports pull progress
// and image events itself; it has no pinning, so that capability is reported missing.

import { Agent } from 'node:http';
import Docker from 'dockerode';
import { systemClock, type Clock } from '../../clock.ts';
import { PrepullError } from '../../errors.ts';
import type { RegistryCredential } from '../../image/credential.ts';
import { canonicalNames, imageTarget, pullTarget, quoted } from '../../image/names.ts';
import type {
  DeletionEvent,
  ImageFsUsage,
  ImageRuntime,
  PullOptions,
  PullProgress,
  RuntimeCapabilities,
  RuntimeImage,
  RuntimeInfo,
} from '../types.ts';
import { DeletionWatches, type OpenedStream, type StreamHandlers } from '../watch.ts';
import { dockerFailure, type Interruption } from './errors.ts';
import { DockerPullTally, JsonLines, streamError, type PullMessage } from './progress.ts';
import { silenceModemDebug } from './quiet-modem.ts';

export interface DockerRuntimeOptions {
  /** "unix:///var/run/docker.sock" or the bare path. */
  endpoint: string;
  clock?: Clock;
  /** Deadline of calls other than pulls. */
  callTimeoutMs?: number;
}

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

interface DockerEvent {
  Type?: string;
  Action?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

interface ImageLike {
  Id: string;
  RepoTags?: string[] | null | undefined;
  RepoDigests?: string[] | null | undefined;
  Size: number;
}

export class DockerRuntime implements ImageRuntime {
  readonly capabilities: RuntimeCapabilities = {
    pin: false,
    deletionEvents: true,
    progress: true,
  };
  readonly endpoint: string;
  readonly #docker: Docker;
  readonly #agent: Agent;
  readonly #clock: Clock;
  readonly #watches: DeletionWatches;
  readonly #callTimeoutMs: number;

  constructor(options: DockerRuntimeOptions) {
    const socketPath = options.endpoint.replace(/^unix:\/\//, '');
    this.endpoint = `unix://${socketPath}`;
    // Our own agent, so close() can drop its idle keep-alive sockets.
    this.#agent = new Agent({ keepAlive: true });
    this.#docker = new Docker({ socketPath, agent: this.#agent } as Docker.DockerOptions);
    this.#clock = options.clock ?? systemClock;
    this.#watches = new DeletionWatches({ clock: this.#clock });
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  async info(): Promise<RuntimeInfo> {
    const version = await this.#call('asking for the version', () => this.#docker.version());
    return {
      name: 'docker',
      version: version.Version,
      apiVersion: version.ApiVersion,
      protocol: 'docker',
      endpoint: this.endpoint,
    };
  }

  async listImages(): Promise<RuntimeImage[]> {
    const images = await this.#call('listing images', (signal) =>
      this.#docker.listImages({ abortSignal: signal }),
    );
    return images.map(toRuntimeImage);
  }

  async imageStatus(ref: string): Promise<RuntimeImage | undefined> {
    const target = imageTarget(ref);
    return this.#inspect(target.kind === 'id' ? target.id : target.name);
  }

  async pull(ref: string, options: PullOptions): Promise<RuntimeImage> {
    const { ref: parsed, name } = pullTarget(ref);
    const action = `pulling ${quoted(name)} through Docker Engine at ${this.endpoint}`;
    if (options.signal?.aborted === true) {
      throw new PrepullError('ERR_ABORTED', `${action} was cancelled before it started`);
    }
    const stop = new AbortController();
    let interrupted: Interruption;
    const onAbort = (): void => {
      interrupted ??= 'aborted';
      stop.abort();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = new AbortController();
    this.#clock.sleep(options.timeoutMs, timer.signal).then(
      () => {
        interrupted ??= 'deadline';
        stop.abort();
      },
      () => undefined,
    );
    try {
      const request = {
        fromImage: parsed.name,
        // Docker's "tag" parameter takes a digest too; a digest pins content, so it wins.
        tag: parsed.digest ?? parsed.tag ?? 'latest',
        abortSignal: stop.signal,
      };
      const auth = authConfig(options.credentials);
      // The credentials travel in a header that docker-modem's debug log would print.
      if (auth !== undefined) silenceModemDebug();
      const stream =
        auth === undefined
          ? await this.#docker.createImage(request)
          : await this.#docker.createImage(auth, request);
      await followPull(stream, stop.signal, options.onProgress);
    } catch (error) {
      throw dockerFailure(error, { action, pull: true, interrupted, timeoutMs: options.timeoutMs });
    } finally {
      timer.abort();
      options.signal?.removeEventListener('abort', onAbort);
    }
    const image = await this.#inspect(name);
    if (image === undefined) {
      throw new PrepullError(
        'ERR_RUNTIME_FAILED',
        `${action}: the pull succeeded but Docker does not report the image`,
      );
    }
    return image;
  }

  async remove(ref: string): Promise<void> {
    const target = imageTarget(ref);
    const name = target.kind === 'id' ? target.id : target.name;
    try {
      await this.#call(`removing ${quoted(name)}`, (signal) =>
        this.#docker.getImage(name).remove({ noprune: false, abortSignal: signal }),
      );
    } catch (error) {
      // Already gone is what the caller wanted; CRI answers the same way.
      if (error instanceof PrepullError && error.code === 'ERR_IMAGE_NOT_FOUND') return;
      throw error;
    }
  }

  pin(): Promise<void> {
    return Promise.reject(this.#unsupported('pinning images against garbage collection'));
  }

  unpin(): Promise<void> {
    return Promise.reject(this.#unsupported('pinning images against garbage collection'));
  }

  async imagesInUse(): Promise<Set<string>> {
    // Every container, exited ones included: Docker refuses to remove their images, and kubelet
    // (through cri-dockerd, whose sandboxes are containers too) counts them in use.
    const containers = await this.#call('listing containers', (signal) =>
      this.#docker.listContainers({ all: true, abortSignal: signal }),
    );
    return new Set(containers.map((c) => c.ImageID).filter((id) => id !== ''));
  }

  async imageFsInfo(): Promise<ImageFsUsage[]> {
    const [info, df] = await Promise.all([
      this.#call(
        'asking for the engine info',
        () => this.#docker.info() as Promise<{ DockerRootDir?: string }>,
      ),
      this.#call(
        'asking for disk usage',
        () => this.#docker.df() as Promise<{ LayersSize?: number }>,
      ),
    ]);
    return [
      {
        mountpoint: info.DockerRootDir ?? '',
        ...(df.LayersSize === undefined ? {} : { usedBytes: df.LayersSize }),
      },
    ];
  }

  watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void> {
    return this.#watches.subscribe((handlers) => this.#openEvents(handlers), onEvent);
  }

  close(): Promise<void> {
    this.#watches.stopAll();
    this.#agent.destroy();
    return Promise.resolve();
  }

  async #inspect(name: string): Promise<RuntimeImage | undefined> {
    try {
      const image = await this.#call(`asking for the status of ${quoted(name)}`, () =>
        this.#docker.getImage(name).inspect(),
      );
      return toRuntimeImage(image);
    } catch (error) {
      if (error instanceof PrepullError && error.code === 'ERR_IMAGE_NOT_FOUND') return undefined;
      throw error;
    }
  }

  async #openEvents(handlers: StreamHandlers): Promise<OpenedStream> {
    const stop = new AbortController();
    const stream = await this.#call('subscribing to image events', () =>
      this.#docker.getEvents({
        filters: { type: ['image'], event: ['delete', 'untag'] },
        abortSignal: stop.signal,
      }),
    );
    // Docker flushes the response headers as the subscription starts: it is live now.
    const lines = new JsonLines<DockerEvent>((event) => {
      const name = event.Actor?.ID ?? event.id;
      if (name !== undefined) handlers.removed(name);
    });
    stream.on('data', (chunk: Buffer) => {
      lines.push(chunk);
    });
    let closing = false;
    const ended = (error?: unknown): void => {
      if (!closing) handlers.ended(error);
    };
    stream.on('error', ended);
    stream.on('end', () => {
      ended();
    });
    stream.on('close', () => {
      ended();
    });
    return {
      close: () => {
        closing = true;
        stop.abort();
      },
    };
  }

  #unsupported(what: string): PrepullError {
    return new PrepullError(
      'ERR_UNSUPPORTED',
      `Docker Engine at ${this.endpoint} does not support ${what}; images stay until removed ` +
        'by hand or by kubelet, and prepull re-pulls what disappears',
    );
  }

  /** One API call with a deadline on the injected clock; errors typed. */
  async #call<T>(action: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const stop = new AbortController();
    const timer = new AbortController();
    let interrupted: Interruption;
    const deadline = this.#clock.sleep(this.#callTimeoutMs, timer.signal).then(
      () => {
        interrupted = 'deadline';
        stop.abort();
        throw new Error('deadline');
      },
      () => new Promise<never>(() => undefined),
    );
    try {
      return await Promise.race([run(stop.signal), deadline]);
    } catch (error) {
      throw dockerFailure(error, {
        action,
        pull: false,
        interrupted,
        timeoutMs: this.#callTimeoutMs,
      });
    } finally {
      timer.abort();
    }
  }
}

/** Reads the pull stream to its end: progress out, in-stream errors thrown. */
function followPull(
  stream: NodeJS.ReadableStream,
  signal: AbortSignal,
  onProgress: ((progress: PullProgress) => void) | undefined,
): Promise<void> {
  const tally = new DockerPullTally();
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    const lines = new JsonLines<PullMessage>((message) => {
      const text = streamError(message);
      if (text !== undefined) {
        failure ??= new Error(text);
        return;
      }
      const progress = tally.observe(message);
      if (progress !== undefined) onProgress?.(progress);
    });
    stream.on('data', (chunk: Buffer) => {
      lines.push(chunk);
    });
    stream.on('error', reject);
    stream.on('end', () => {
      if (failure !== undefined) reject(failure);
      else if (signal.aborted) reject(new Error('aborted'));
      else if (!tally.finished) reject(new Error('the pull stream ended before the pull finished'));
      else resolve();
    });
  });
}

function toRuntimeImage(image: ImageLike): RuntimeImage {
  return {
    id: image.Id,
    repoTags: canonicalNames(image.RepoTags),
    repoDigests: canonicalNames(image.RepoDigests),
    size: image.Size,
    pinned: false,
  };
}

/** X-Registry-Auth for the pull; dockerode sends it as a header, never in the URL. */
function authConfig(credential: RegistryCredential | undefined): object | undefined {
  if (credential === undefined) return undefined;
  return {
    ...(credential.username === undefined ? {} : { username: credential.username }),
    ...(credential.password === undefined ? {} : { password: credential.password }),
    ...(credential.identityToken === undefined ? {} : { identitytoken: credential.identityToken }),
    ...(credential.registryToken === undefined ? {} : { registrytoken: credential.registryToken }),
  };
}
