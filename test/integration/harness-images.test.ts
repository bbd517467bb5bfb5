// Checks the test-image builder against GNU tar and the OCI image rules a registry and runtimes
// rely on: checksums, diff_ids, shared layers, index descriptors, determinism. An integration test
// because it needs Debian's busybox-static, which the harness's setup installs.
import { it, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  buildImage,
  buildIndex,
  busyboxLayer,
  clearLayerCache,
  fileLayer,
  fillerLayer,
  runnableImage,
  sha256,
} from '../harness/images.ts';
import { BLOCK_SIZE, tarHeader, ustarChecksum, writeTar } from '../harness/tar.ts';
import type { TarEntry } from '../harness/tar.ts';
import { describeIntegration } from '../harness/jest.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prepull-images-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function systemTar(archive: Buffer, ...args: string[]): string {
  const file = join(dir, `a-${Math.random().toString(36).slice(2)}.tar`);
  writeFileSync(file, archive);
  return execFileSync('tar', [...args, file], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
  });
}

// Walks an archive the way a reader does, returning names and file sizes.
function listEntries(archive: Buffer): { name: string; type: string; size: number }[] {
  const out: { name: string; type: string; size: number }[] = [];
  for (let offset = 0; offset + BLOCK_SIZE <= archive.length;) {
    const header = archive.subarray(offset, offset + BLOCK_SIZE);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number): string =>
      header.toString('utf8', start, start + length).replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12), 8);
    out.push({ name, type: field(156, 1), size });
    offset += BLOCK_SIZE + Math.ceil(size / BLOCK_SIZE) * BLOCK_SIZE;
  }
  return out;
}

const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
const sample: TarEntry[] = [
  { type: 'dir', path: 'bin' },
  { type: 'file', path: '/bin/tool', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
  { type: 'symlink', path: 'bin/alias', target: 'tool' },
  { type: 'file', path: 'etc/empty', data: Buffer.alloc(0) },
  { type: 'file', path: 'etc/block', data: Buffer.alloc(BLOCK_SIZE, 7), mode: 0o600 },
  { type: 'dir', path: longDir },
  { type: 'file', path: `${longDir}/${'f'.repeat(90)}.txt`, data: Buffer.from('deep') },
];

describeIntegration('harness tar writer', () => {
  it('round-trips names, modes and symlink targets through GNU tar', () => {
    const listing = systemTar(writeTar(sample), '--numeric-owner', '-tvf')
      .trim()
      .split('\n')
      .map((line) => line.replace(/\s+/g, ' '));
    expect(listing).toEqual([
      'drwxr-xr-x 0/0 0 1970-01-01 00:00 bin/',
      '-rwxr-xr-x 0/0 18 1970-01-01 00:00 bin/tool',
      'lrwxrwxrwx 0/0 0 1970-01-01 00:00 bin/alias -> tool',
      '-rw-r--r-- 0/0 0 1970-01-01 00:00 etc/empty',
      '-rw------- 0/0 512 1970-01-01 00:00 etc/block',
      `drwxr-xr-x 0/0 0 1970-01-01 00:00 ${longDir}/`,
      `-rw-r--r-- 0/0 4 1970-01-01 00:00 ${longDir}/${'f'.repeat(90)}.txt`,
    ]);
  });

  it('extracts files with the same bytes', () => {
    const data = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 31) % 256));
    const out = join(dir, 'extract');
    execFileSync('mkdir', ['-p', out]);
    systemTar(writeTar([{ type: 'file', path: 'x/data.bin', data }]), '-C', out, '-xf');
    expect(readFileSync(join(out, 'x/data.bin')).equals(data)).toBe(true);
    systemTar(writeTar(sample), '-C', out, '-xf');
    expect(readFileSync(join(out, longDir, `${'f'.repeat(90)}.txt`), 'utf8')).toBe('deep');
  });

  it('writes ustar headers with a correct checksum and padding', () => {
    const header = tarHeader({ type: 'file', path: 'a', data: Buffer.from('xyz') });
    expect(header.length).toBe(BLOCK_SIZE);
    expect(header.toString('ascii', 257, 265)).toBe('ustar\u000000');
    const stored = header.toString('ascii', 148, 156);
    expect(stored).toMatch(/^[0-7]{6}\0 $/);
    let sum = 0;
    for (let i = 0; i < BLOCK_SIZE; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    expect(parseInt(stored.slice(0, 6), 8)).toBe(sum);
    expect(ustarChecksum(header)).toBe(sum);

    const archive = writeTar([{ type: 'file', path: 'a', data: Buffer.from('xyz') }]);
    expect(archive.length).toBe(4 * BLOCK_SIZE); // header, padded data, two zero blocks
    expect(archive.subarray(2 * BLOCK_SIZE).every((b) => b === 0)).toBe(true);
  });

  it('rejects names that cannot fit and bad paths', () => {
    const file = (path: string): TarEntry => ({ type: 'file', path, data: Buffer.alloc(0) });
    expect(() => writeTar([file('x'.repeat(101))])).toThrow(/does not fit ustar/);
    expect(() => writeTar([file(`${'p'.repeat(156)}/name`)])).toThrow(/does not fit ustar/);
    expect(() => writeTar([file('../escape')])).toThrow(/invalid entry path/);
    expect(() => writeTar([{ type: 'symlink', path: 'l', target: 't'.repeat(101) }])).toThrow(
      /symlink target/,
    );
    expect(listEntries(writeTar([file(`${'p'.repeat(155)}/${'n'.repeat(100)}`)]))[0]?.name).toBe(
      `${'p'.repeat(155)}/${'n'.repeat(100)}`,
    );
  });

  it('is deterministic', () => {
    expect(writeTar(sample).equals(writeTar(sample))).toBe(true);
  });
});

describeIntegration('harness image builder', () => {
  it('gives layers diff_ids that are the sha256 of the gunzipped blob', () => {
    const image = runnableImage({
      marker: 'diff-ids',
      extraLayers: [fillerLayer({ bytes: 10_000, seed: 'd' })],
    });
    const config = JSON.parse(image.config.toString()) as {
      rootfs: { type: string; diff_ids: string[] };
      config: { Cmd: string[]; Env: string[] };
      os: string;
      architecture: string;
      created: string;
    };
    expect(config.rootfs.type).toBe('layers');
    expect(config.rootfs.diff_ids).toEqual(image.layers.map((l) => sha256(gunzipSync(l.blob))));
    expect(image.layers.map((l) => l.diffId)).toEqual(config.rootfs.diff_ids);
    expect(config.config.Cmd).toEqual(['/bin/sh', '-c', 'cat /marker']);
    expect(config.os).toBe('linux');
    expect(config.architecture).toBe('amd64');
    expect(image.configDigest).toBe(sha256(image.config));
  });

  it('writes a manifest that describes its config and layers', () => {
    const image = runnableImage({ marker: 'manifest' });
    const manifest = JSON.parse(image.manifest.toString()) as {
      schemaVersion: number;
      mediaType: string;
      config: { digest: string; size: number };
      layers: { mediaType: string; digest: string; size: number }[];
    };
    expect(image.digest).toBe(sha256(image.manifest));
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.mediaType).toBe(OCI_MANIFEST);
    expect(manifest.config).toMatchObject({
      digest: image.configDigest,
      size: image.config.length,
    });
    for (const [i, layer] of image.layers.entries()) {
      expect(manifest.layers[i]).toEqual({
        mediaType: OCI_LAYER_GZIP,
        digest: sha256(layer.blob),
        size: layer.blob.length,
      });
    }
    const total = image.layers.reduce((sum, l) => sum + l.size, 0);
    expect(image.size).toBe(image.manifest.length + image.config.length + total);
  });

  it('puts busybox and its applet links in the busybox layer', () => {
    const entries = listEntries(gunzipSync(busyboxLayer().blob));
    expect(entries.map((e) => e.name)).toEqual([
      'bin/',
      'bin/busybox',
      'bin/sh',
      'bin/echo',
      'bin/sleep',
      'bin/cat',
      'bin/ls',
      'bin/true',
    ]);
    expect(entries[1]?.size).toBe(readFileSync('/bin/busybox').length);
  });

  it('names the Debian package when busybox is missing', () => {
    expect(() => busyboxLayer('/nonexistent/busybox')).toThrow(/busybox-static/);
  });

  it('builds identical digests from the same spec, even after the layer cache is cleared', () => {
    const spec = (): Parameters<typeof runnableImage>[0] => ({
      marker: 'same',
      extraLayers: [fillerLayer({ bytes: 100_000, seed: 'same' }), fileLayer({ '/etc/x': 'y' })],
      env: ['A=1'],
      labels: { team: 'prepull' },
      entrypoint: ['/bin/sh'],
      cmd: ['-c', 'true'],
    });
    const first = runnableImage(spec());
    clearLayerCache();
    const second = runnableImage(spec());
    expect(second.digest).toBe(first.digest);
    expect(second.configDigest).toBe(first.configDigest);
    expect(second.manifest.equals(first.manifest)).toBe(true);
    expect(runnableImage({ marker: 'other' }).digest).not.toBe(first.digest);
  });

  it('shares filler layers between images with the same seed and size', () => {
    const a = runnableImage({ marker: 'a', extraLayers: [fillerLayer({ bytes: 4096, seed: 7 })] });
    const b = buildImage({ layers: [fillerLayer({ bytes: 4096, seed: 7 })] });
    const c = buildImage({ layers: [fillerLayer({ bytes: 4096, seed: 8 })] });
    expect(b.layers[0]?.digest).toBe(a.layers[2]?.digest);
    expect(c.layers[0]?.digest).not.toBe(b.layers[0]?.digest);
    expect(a.layers[0]?.digest).toBe(busyboxLayer().digest);
  });

  it('fills exactly the requested number of incompressible bytes', () => {
    for (const bytes of [0, 1, 511, 512, 12_345]) {
      const entries = listEntries(gunzipSync(fillerLayer({ bytes, seed: 'n' }).blob));
      expect(entries).toEqual([
        { name: 'data/', type: '5', size: 0 },
        { name: 'data/n.bin', type: '0', size: bytes },
      ]);
    }
    const tar = gunzipSync(fillerLayer({ bytes: 65_536, seed: 'z' }).blob);
    const data = tar.subarray(2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 65_536);
    expect(gzipSync(data, { level: 9 }).length).toBeGreaterThan(65_536);
  });

  it('builds an index whose descriptors name each child manifest', () => {
    const amd = runnableImage({ marker: 'multi' });
    const arm = runnableImage({
      marker: 'multi',
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    });
    const index = buildIndex([amd, arm]);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.digest).toBe(sha256(index.manifest));
    const parsed = JSON.parse(index.manifest.toString()) as {
      schemaVersion: number;
      mediaType: string;
      manifests: unknown[];
    };
    expect(parsed.schemaVersion).toBe(2);
    expect(parsed.mediaType).toBe(OCI_INDEX);
    expect(parsed.manifests).toEqual([
      {
        mediaType: OCI_MANIFEST,
        digest: amd.digest,
        size: amd.manifest.length,
        platform: { os: 'linux', architecture: 'amd64' },
      },
      {
        mediaType: OCI_MANIFEST,
        digest: arm.digest,
        size: arm.manifest.length,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
    ]);
    expect(JSON.parse(arm.config.toString())).toMatchObject({
      architecture: 'arm64',
      variant: 'v8',
    });
    expect(arm.digest).not.toBe(amd.digest);
  });
});
