// Builds OCI images and indexes in memory for tests: runnable busybox images, large filler layers
// and marker files. Everything is deterministic, so equal specs give equal digests across runs.
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { writeTar } from './tar.ts';
import type { TarEntry } from './tar.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const BUSYBOX_PATH = '/bin/busybox';
export const BUSYBOX_APPLETS = ['sh', 'echo', 'sleep', 'cat', 'ls', 'true'] as const;

// Images carry no clock: a fixed creation time keeps config digests stable.
export const IMAGE_CREATED = '1970-01-01T00:00:00Z';
const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

export interface Layer {
  readonly mediaType: typeof OCI_LAYER_GZIP;
  /** sha256 of the compressed blob, as the manifest names it. */
  readonly digest: string;
  /** sha256 of the uncompressed tar, as the config's rootfs.diff_ids names it. */
  readonly diffId: string;
  readonly size: number;
  readonly blob: Buffer;
}

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface ImageSpec {
  readonly layers: readonly Layer[];
  readonly cmd?: readonly string[];
  readonly entrypoint?: readonly string[];
  /** Defaults to a standard PATH, as docker and containerd would otherwise guess one. */
  readonly env?: readonly string[];
  /** Defaults to linux/amd64. */
  readonly platform?: Platform;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface BuiltImage {
  readonly mediaType: typeof OCI_MANIFEST;
  readonly manifest: Buffer;
  readonly digest: string;
  readonly config: Buffer;
  readonly configDigest: string;
  readonly layers: readonly Layer[];
  /** Manifest + config + compressed layers, in bytes. */
  readonly size: number;
  readonly platform: Platform;
}

export interface BuiltIndex {
  readonly mediaType: typeof OCI_INDEX;
  readonly manifest: Buffer;
  readonly digest: string;
  readonly images: readonly BuiltImage[];
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A gzip-compressed layer from tar entries; level 0 suits data that will not compress anyway. */
export function tarLayer(entries: readonly TarEntry[], gzipLevel = 6): Layer {
  const tar = writeTar(entries);
  const blob = gzipSync(tar, { level: gzipLevel });
  return {
    mediaType: OCI_LAYER_GZIP,
    digest: sha256(blob),
    diffId: sha256(tar),
    size: blob.length,
    blob,
  };
}

// Layers are memoised so images built from the same inputs share blobs (and a 300 MB filler
// is generated once per process).
const layerCache = new Map<string, Layer>();

function memo(key: string, build: () => Layer): Layer {
  let layer = layerCache.get(key);
  if (layer === undefined) {
    layer = build();
    layerCache.set(key, layer);
  }
  return layer;
}

/** Forgets memoised layers: frees memory, and lets tests prove rebuilding is deterministic. */
export function clearLayerCache(): void {
  layerCache.clear();
}

/** /bin/busybox from the host plus applet symlinks, enough to run `sh -c 'cat /marker'`. */
export function busyboxLayer(path: string = BUSYBOX_PATH): Layer {
  return memo(`busybox\u0000${path}`, () => {
    let binary: Buffer;
    try {
      binary = readFileSync(path);
    } catch (cause) {
      throw new Error(
        `test images need a static busybox at ${path}: install the Debian package busybox-static`,
        { cause },
      );
    }
    return tarLayer([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/busybox', data: binary, mode: 0o755 },
      ...BUSYBOX_APPLETS.map((name) => ({
        type: 'symlink' as const,
        path: `bin/${name}`,
        target: 'busybox',
      })),
    ]);
  });
}

/**
 * `/data/<seed>.bin` holding exactly `bytes` incompressible bytes: an AES-256-CTR keystream keyed
 * by sha256(seed), which is fast and deterministic. Stored at gzip level 0, because compressing
 * random data only costs time (level 1 takes ~10 s for 300 MB here, level 0 ~1.5 s).
 */
export function fillerLayer(options: { bytes: number; seed: string | number }): Layer {
  const { bytes } = options;
  const seed = String(options.seed);
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new Error(`fillerLayer: bytes must be a non-negative integer, got ${bytes}`);
  }
  if (seed.includes('/') || seed === '') {
    throw new Error(`fillerLayer: seed ${JSON.stringify(seed)} must be a non-empty file name`);
  }
  return memo(`filler\u0000${seed}\u0000${bytes}`, () => {
    const key = createHash('sha256').update(seed).digest();
    const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    const data = Buffer.concat([cipher.update(Buffer.alloc(bytes)), cipher.final()]);
    return tarLayer(
      [
        { type: 'dir', path: 'data' },
        { type: 'file', path: `data/${seed}.bin`, data },
      ],
      0,
    );
  });
}

/** Small files (markers, configs); parent directories are added so runtimes see real dirs. */
export function fileLayer(files: Readonly<Record<string, string | Buffer>>): Layer {
  const dirs = new Set<string>();
  const entries: TarEntry[] = [];
  for (const [path, content] of Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const parts = path.replace(/^\/+/, '').split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!dirs.has(dir)) {
        dirs.add(dir);
        entries.push({ type: 'dir', path: dir });
      }
    }
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    entries.push({ type: 'file', path, data });
  }
  return tarLayer(entries);
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const { os = 'linux', architecture = 'amd64', variant } = spec.platform ?? {};
  // Rebuilt in a fixed key order so the index JSON does not depend on how callers wrote it.
  const platform: Platform =
    variant === undefined ? { os, architecture } : { os, architecture, variant };
  const config = Buffer.from(
    JSON.stringify({
      created: IMAGE_CREATED,
      architecture,
      os,
      variant,
      config: {
        Env: spec.env ?? DEFAULT_ENV,
        Entrypoint: spec.entrypoint,
        Cmd: spec.cmd,
        Labels: spec.labels,
      },
      rootfs: { type: 'layers', diff_ids: spec.layers.map((layer) => layer.diffId) },
    }),
  );
  const configDigest = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: spec.layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    }),
  );
  return {
    mediaType: OCI_MANIFEST,
    manifest,
    digest: sha256(manifest),
    config,
    configDigest,
    layers: spec.layers,
    size: manifest.length + config.length + spec.layers.reduce((sum, l) => sum + l.size, 0),
    platform,
  };
}

export function buildIndex(images: readonly BuiltImage[]): BuiltIndex {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      // A descriptor's size is the child manifest's own length, not the image's total size.
      manifests: images.map((image) => ({
        mediaType: image.mediaType,
        digest: image.digest,
        size: image.manifest.length,
        platform: image.platform,
      })),
    }),
  );
  return { mediaType: OCI_INDEX, manifest, digest: sha256(manifest), images };
}

export interface RunnableImageOptions extends Omit<ImageSpec, 'layers'> {
  /** Written to /marker, so every test image gets distinct content and digests. */
  readonly marker: string;
  readonly extraLayers?: readonly Layer[];
}

/** busybox + /marker + extras; by default the container prints its marker and exits. */
export function runnableImage(options: RunnableImageOptions): BuiltImage {
  const { marker, extraLayers = [], cmd = ['/bin/sh', '-c', 'cat /marker'], ...rest } = options;
  return buildImage({
    ...rest,
    layers: [busyboxLayer(), fileLayer({ '/marker': marker }), ...extraLayers],
    cmd,
  });
}
