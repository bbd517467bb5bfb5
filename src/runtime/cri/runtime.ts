// ImageRuntime over the CRI v1 image and runtime services (containerd, CRI-O, cri-dockerd), the
// same calls kubelet makes. CRI has no pinning, events or progress; a runtime that offers them
// natively (containerd) plugs them in as CriExtras on the same connection.

import { fileURLToPath } from 'node:url';
import { PrepullError } from '../../errors.ts';
import type { RegistryCredential } from '../../image/credential.ts';
import {
  allNames,
  canonicalNames,
  imageTarget,
  isImageId,
  pullTarget,
  quoted,
} from '../../image/names.ts';
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
import { grpcFailure } from './errors.ts';
import { GrpcConnection, loadMethods, unixTarget, type Method } from './grpc.ts';

// Next to this module in src/ and, copied by scripts/build.ts, in dist/.
export const CRI_PROTO = fileURLToPath(new URL('./cri.proto', import.meta.url));

/** What a runtime adds beyond CRI, on the same socket (containerd: see ../containerd). */
export interface CriExtras {
  /**
   * The runtime's own records of images (tags, digest references, IDs) among `names`, or all of
   * them, each with whether it carries the pin against kubelet's GC.
   */
  pinRecords(names?: readonly string[]): Promise<ReadonlyMap<string, boolean>>;
  /** Pins or unpins the records under these names; names without a record are skipped. */
  setPinned(names: readonly string[], pinned: boolean): Promise<void>;
  watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void>;
  /** Starts measuring a pull's bytes; `stop` reports a last figure and ends the measurement. */
  trackPull(onProgress: (progress: PullProgress) => void): { stop(): Promise<void> };
  close(): void;
}

export interface CriRuntimeOptions {
  /** "unix:///run/containerd/containerd.sock" or the bare path. */
  endpoint: string;
  /** Deadline of calls other than pulls. */
  callTimeoutMs?: number;
  /** An existing connection to the same socket, shared with the extras. */
  connection?: GrpcConnection;
  extras?: CriExtras;
}

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

interface CriImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: string;
  pinned: boolean;
}

interface CriContainer {
  id: string;
  image: { image: string } | null;
  image_ref: string;
  image_id: string;
}

interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

interface FilesystemUsage {
  fs_id: { mountpoint: string } | null;
  used_bytes: { value: string } | null;
  inodes_used: { value: string } | null;
}

let methodCache: { runtime: Record<string, Method>; image: Record<string, Method> } | undefined;

function criMethods(): { runtime: Record<string, Method>; image: Record<string, Method> } {
  methodCache ??= {
    runtime: loadMethods([CRI_PROTO], 'runtime.v1.RuntimeService'),
    image: loadMethods([CRI_PROTO], 'runtime.v1.ImageService'),
  };
  return methodCache;
}

function method(table: Record<string, Method>, name: string): Method {
  const found = table[name];
  if (found === undefined) throw new Error(`cri.proto has no method ${name}`);
  return found;
}

export class CriRuntime implements ImageRuntime {
  readonly capabilities: RuntimeCapabilities;
  readonly endpoint: string;
  readonly #connection: GrpcConnection;
  readonly #extras: CriExtras | undefined;
  readonly #callTimeoutMs: number;
  #runtimeName = 'the CRI runtime';

  constructor(options: CriRuntimeOptions) {
    this.endpoint = unixTarget(options.endpoint);
    this.#connection = options.connection ?? new GrpcConnection(options.endpoint);
    this.#extras = options.extras;
    this.#callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const native = this.#extras !== undefined;
    this.capabilities = { pin: native, deletionEvents: native, progress: native };
  }

  async version(timeoutMs = this.#callTimeoutMs): Promise<VersionResponse> {
    const response = await this.#call<VersionResponse>(
      method(criMethods().runtime, 'Version'),
      { version: 'v1' },
      'asking for the version',
      timeoutMs,
    );
    if (response.runtime_name !== '') this.#runtimeName = response.runtime_name;
    return response;
  }

  async info(): Promise<RuntimeInfo> {
    const [version, status] = await Promise.all([
      this.version(),
      this.#call<{ info: Record<string, string> }>(
        method(criMethods().runtime, 'Status'),
        { verbose: true },
        'asking for the status',
      ),
    ]);
    const sandboxImage = sandboxImageOf(status.info);
    return {
      name: version.runtime_name,
      version: version.runtime_version,
      apiVersion: version.runtime_api_version,
      protocol: 'cri',
      endpoint: this.endpoint,
      ...(sandboxImage === undefined ? {} : { sandboxImage }),
    };
  }

  async listImages(): Promise<RuntimeImage[]> {
    const [response, pinned] = await Promise.all([
      this.#call<{ images: CriImage[] }>(
        method(criMethods().image, 'ListImages'),
        {},
        'listing images',
      ),
      this.#pinRecords(),
    ]);
    return response.images.map((image) => toRuntimeImage(image, pinned));
  }

  async imageStatus(ref: string): Promise<RuntimeImage | undefined> {
    const target = imageTarget(ref);
    const name = target.kind === 'id' ? target.id : target.name;
    const image = await this.#criStatus(name);
    return image === undefined
      ? undefined
      : toRuntimeImage(image, await this.#pinRecords(namesOf(image)));
  }

  async pull(ref: string, options: PullOptions): Promise<RuntimeImage> {
    const { name } = pullTarget(ref);
    const action = `pulling ${quoted(name)} through ${this.#runtimeName} at ${this.endpoint}`;
    const tracker =
      options.onProgress === undefined ? undefined : this.#extras?.trackPull(options.onProgress);
    try {
      const response = await this.#call<{ image_ref: string }>(
        method(criMethods().image, 'PullImage'),
        { image: { image: name }, ...authConfig(options.credentials) },
        action,
        options.timeoutMs,
        { signal: options.signal, pull: true },
      );
      const image = await this.#criStatus(response.image_ref || name);
      if (image === undefined) {
        throw new PrepullError(
          'ERR_RUNTIME_FAILED',
          `${action}: the pull succeeded but the runtime does not report the image`,
        );
      }
      return toRuntimeImage(image, await this.#pinRecords(namesOf(image)));
    } finally {
      await tracker?.stop();
    }
  }

  async remove(ref: string): Promise<void> {
    const target = imageTarget(ref);
    const name = target.kind === 'id' ? target.id : target.name;
    await this.#call(
      method(criMethods().image, 'RemoveImage'),
      { image: { image: name } },
      `removing ${quoted(name)}`,
    );
  }

  async pin(ref: string): Promise<void> {
    await this.#setPinned(ref, true);
  }

  async unpin(ref: string): Promise<void> {
    await this.#setPinned(ref, false);
  }

  async imagesInUse(): Promise<Set<string>> {
    const runtime = criMethods().runtime;
    const [containers, sandboxes, status] = await Promise.all([
      this.#call<{ containers: CriContainer[] }>(
        method(runtime, 'ListContainers'),
        {},
        'listing containers',
      ),
      this.#call<{ items: { id: string }[] }>(
        method(runtime, 'ListPodSandbox'),
        {},
        'listing pod sandboxes',
      ),
      this.#call<{ info: Record<string, string> }>(
        method(runtime, 'Status'),
        { verbose: true },
        'asking for the status',
      ),
    ]);
    const used = new Set<string>();
    // By reference: what the container's config or image_ref names, resolved to its ID once.
    const byName = new Set<string>();
    for (const container of containers.containers) {
      const id = [container.image_id, container.image_ref].find(isImageId);
      if (id !== undefined) used.add(id);
      else {
        const name = container.image_ref || container.image?.image;
        if (name) byName.add(name);
      }
    }
    // The sandboxes run the pause image, which CRI does not list with them.
    const sandboxImage = sandboxImageOf(status.info);
    if (sandboxes.items.length > 0 && sandboxImage !== undefined) byName.add(sandboxImage);
    for (const name of byName) {
      let image: CriImage | undefined;
      try {
        const target = imageTarget(name);
        image = await this.#criStatus(target.kind === 'id' ? target.id : target.name);
      } catch (error) {
        // A name that is no reference (CRI-O may report an image by a local name): not ours.
        if (error instanceof PrepullError && error.code === 'ERR_IMAGE_REF_INVALID') continue;
        throw error;
      }
      if (image !== undefined) used.add(image.id);
    }
    return used;
  }

  async imageFsInfo(): Promise<ImageFsUsage[]> {
    const response = await this.#call<{ image_filesystems: FilesystemUsage[] }>(
      method(criMethods().image, 'ImageFsInfo'),
      {},
      'asking for image filesystem usage',
    );
    return response.image_filesystems.map((fs) => ({
      mountpoint: fs.fs_id?.mountpoint ?? '',
      ...(fs.used_bytes === null ? {} : { usedBytes: Number(fs.used_bytes.value) }),
      ...(fs.inodes_used === null ? {} : { inodesUsed: Number(fs.inodes_used.value) }),
    }));
  }

  async watchDeletions(onEvent: (event: DeletionEvent) => void): Promise<() => void> {
    if (this.#extras === undefined) throw this.#unsupported('reporting image deletions as events');
    return this.#extras.watchDeletions(onEvent);
  }

  close(): Promise<void> {
    this.#extras?.close();
    this.#connection.close();
    return Promise.resolve();
  }

  async #setPinned(ref: string, pinned: boolean): Promise<void> {
    if (this.#extras === undefined) throw this.#unsupported('pinning images');
    const target = imageTarget(ref);
    const name = target.kind === 'id' ? target.id : target.name;
    const image = await this.#criStatus(name);
    if (image === undefined) {
      throw new PrepullError(
        'ERR_IMAGE_NOT_FOUND',
        `cannot ${pinned ? 'pin' : 'unpin'} ${quoted(name)}: it is not on this node; pull it first`,
      );
    }
    // Every record of the image carries the label, as containerd does for its sandbox image:
    // kubelet may ask about it by any of its names.
    await this.#extras.setPinned(allNames(toRuntimeImage(image, undefined)), pinned);
  }

  async #criStatus(name: string): Promise<CriImage | undefined> {
    const response = await this.#call<{ image: CriImage | null }>(
      method(criMethods().image, 'ImageStatus'),
      { image: { image: name } },
      `asking for the status of ${quoted(name)}`,
    );
    return response.image ?? undefined;
  }

  async #pinRecords(names?: readonly string[]): Promise<PinRecords | undefined> {
    return this.#extras?.pinRecords(names);
  }

  #unsupported(what: string): PrepullError {
    return new PrepullError(
      'ERR_UNSUPPORTED',
      `${this.#runtimeName} at ${this.endpoint} does not support ${what} through CRI`,
    );
  }

  async #call<Response>(
    rpc: Method,
    request: object,
    action: string,
    timeoutMs = this.#callTimeoutMs,
    extra: { signal?: AbortSignal | undefined; pull?: boolean } = {},
  ): Promise<Response> {
    try {
      return await this.#connection.unary<Response>(rpc, request, {
        timeoutMs,
        signal: extra.signal,
      });
    } catch (error) {
      throw grpcFailure(error, {
        action,
        pull: extra.pull === true,
        aborted: extra.signal?.aborted === true,
        timeoutMs,
      });
    }
  }
}

/** Every name a containerd record of this image may carry: tags, digest references, the ID. */
function namesOf(image: CriImage): string[] {
  return [...canonicalNames(image.repo_tags), ...canonicalNames(image.repo_digests), image.id];
}

/** Record name → whether it carries the pin label; undefined where the runtime has no labels. */
type PinRecords = ReadonlyMap<string, boolean>;

function toRuntimeImage(image: CriImage, records: PinRecords | undefined): RuntimeImage {
  const repoTags = canonicalNames(image.repo_tags);
  const repoDigests = canonicalNames(image.repo_digests);
  const base = { id: image.id, repoTags, repoDigests, size: Number(image.size) };
  // Without labels (CRI-O, cri-dockerd), CRI's own flag is all there is.
  if (records === undefined) {
    return { ...base, pinned: image.pinned, ...(image.pinned ? { pinSource: 'cri' } : {}) };
  }
  // prepull labels every record of the image, as CRI does for the sandbox image; one whose
  // label someone took off (`ctr images label IMG io.cri-containerd.pinned=`) makes the image
  // unpinned, so that the engine puts the pin back. containerd 1.6.20 keeps the label but CRI
  // reports false (1.6.22 / 1.7.3 report it): `pinSource` says which of the two knows the pin.
  // Some records labelled but not all: unpinned, with `pinPartial` so that the engine does not
  // take as its own a pin someone else began.
  const present = [...repoTags, ...repoDigests, image.id].filter((name) => records.has(name));
  const count = present.filter((name) => records.get(name) === true).length;
  if (count === 0) return { ...base, pinned: false };
  if (count < present.length) return { ...base, pinned: false, pinPartial: true };
  return { ...base, pinned: true, pinSource: image.pinned ? 'cri' : 'label' };
}

/** AuthConfig for PullImage; the credential's secrets go to the runtime and nowhere else. */
function authConfig(credential: RegistryCredential | undefined): { auth?: object } {
  if (credential === undefined) return {};
  return {
    auth: {
      username: credential.username ?? '',
      password: credential.password ?? '',
      identity_token: credential.identityToken ?? '',
      registry_token: credential.registryToken ?? '',
    },
  };
}

function sandboxImageOf(info: Record<string, string>): string | undefined {
  const config = info.config;
  if (config === undefined) return undefined;
  try {
    const parsed = JSON.parse(config) as { sandboxImage?: unknown };
    return typeof parsed.sandboxImage === 'string' && parsed.sandboxImage !== ''
      ? parsed.sandboxImage
      : undefined;
  } catch {
    return undefined;
  }
}
