// Runtime detection: the probing order, an explicit endpoint, the error listing every socket
// tried, and the default prober against stand-ins on real unix sockets (a Docker-like HTTP
// server, a socket that speaks neither protocol, a file, a missing path).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPrepullError } from '../errors.ts';
import {
  DEFAULT_SOCKETS,
  detectRuntime,
  probeSocket,
  socketOf,
  type ProbeResult,
} from './detect.ts';
import { FakeRuntime } from './testing/fake.ts';

const CONTAINERD: ProbeResult = {
  kind: 'cri',
  runtimeName: 'containerd',
  runtimeVersion: '1.6.20',
  apiVersion: 'v1',
};

describe('detectRuntime', () => {
  it('probes the default sockets in order and takes the first that answers', async () => {
    const probed: string[] = [];
    const detected = await detectRuntime({
      probe: (socket) => {
        probed.push(socket);
        return socket === '/run/k3s/containerd/containerd.sock'
          ? Promise.resolve(CONTAINERD)
          : Promise.reject(new Error('no such socket'));
      },
      create: () => Promise.resolve(new FakeRuntime()),
    });
    expect(probed).toEqual(DEFAULT_SOCKETS.slice(0, 4));
    expect(detected.endpoint).toBe('unix:///run/k3s/containerd/containerd.sock');
    expect(detected.skipped.map((s) => s.reason)).toEqual(Array(3).fill('no such socket'));
    expect(detected.description).toBe(
      'containerd 1.6.20 (CRI v1) at unix:///run/k3s/containerd/containerd.sock; ' +
        'with pinning, deletion events, pull progress',
    );
  });

  it('with an explicit endpoint, tries only that one', async () => {
    const probed: string[] = [];
    const detected = await detectRuntime({
      endpoint: 'unix:///custom/docker.sock',
      probe: (socket) => {
        probed.push(socket);
        return Promise.resolve({ kind: 'docker', version: '20.10.24', apiVersion: '1.41' });
      },
      create: () =>
        Promise.resolve(
          new FakeRuntime({ capabilities: { pin: false, deletionEvents: true, progress: true } }),
        ),
    });
    expect(probed).toEqual(['/custom/docker.sock']);
    expect(detected.description).toBe(
      'Docker Engine 20.10.24 (API 1.41) at unix:///custom/docker.sock; ' +
        'with deletion events, pull progress',
    );
  });

  it('fails with ERR_RUNTIME_NOT_DETECTED listing every socket tried and why', async () => {
    let caught: unknown;
    try {
      await detectRuntime({
        candidates: ['/a.sock', '/b.sock'],
        probe: (socket) => Promise.reject(new Error(`nothing at ${socket}`)),
      });
    } catch (error) {
      caught = error;
    }
    expect(isPrepullError(caught, 'ERR_RUNTIME_NOT_DETECTED')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain('unix:///a.sock: nothing at /a.sock');
    expect(message).toContain('unix:///b.sock: nothing at /b.sock');
    expect(message).toContain('--runtime-endpoint');
  });

  it('accepts unix:// endpoints and bare paths, and refuses other schemes', () => {
    expect(socketOf('unix:///run/x.sock')).toBe('/run/x.sock');
    expect(socketOf('/run/x.sock')).toBe('/run/x.sock');
    expect(() => socketOf('tcp://127.0.0.1:2375')).toThrow(/not a unix socket/);
  });
});

describe('probeSocket', () => {
  let dir: string;
  let docker: HttpServer;
  let mute: NetServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-detect-'));
    writeFileSync(join(dir, 'file'), '');
    docker = createHttpServer((req, res) => {
      if (req.url === '/_ping') res.end('OK');
      else if (req.url === '/version') res.end('{"Version":"20.10.24","ApiVersion":"1.41"}');
      else res.writeHead(404).end();
    });
    // Speaks neither protocol: closes every connection at once.
    mute = createNetServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => docker.listen(join(dir, 'docker.sock'), resolve));
    await new Promise<void>((resolve) => mute.listen(join(dir, 'mute.sock'), resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => docker.close(resolve));
    await new Promise((resolve) => mute.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('recognises Docker Engine by GET /_ping', async () => {
    await expect(probeSocket(join(dir, 'docker.sock'), 1000)).resolves.toEqual({
      kind: 'docker',
      version: '20.10.24',
      apiVersion: '1.41',
    });
  });

  it('says why a path is passed over', async () => {
    await expect(probeSocket(join(dir, 'missing.sock'), 1000)).rejects.toThrow('no such socket');
    await expect(probeSocket(join(dir, 'file'), 1000)).rejects.toThrow('not a socket');
    await expect(probeSocket(join(dir, 'mute.sock'), 1000)).rejects.toThrow(
      /^not Docker Engine \(.+\), not CRI \(.+\)$/,
    );
  });
});
