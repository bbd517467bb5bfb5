// A controller stopped while its informers still list (a SIGTERM in the first seconds) must not
// report its caches synced afterwards: the log read "exiting", then "controller informers synced".
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/kube-api-server/index.ts';
import { systemClock } from '../clock.ts';
import { KubeClient } from '../kube/client.ts';
import { createLogger } from '../telemetry/logger.ts';
import { Controller } from './controller.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

let server: KubeApiServer;

beforeAll(async () => {
  server = await KubeApiServer.start();
  server.applyManifests(join(REPO, 'deploy', 'crds'));
});

afterAll(async () => {
  await server.stop();
});

describe('Controller stopped before its caches synced', () => {
  it('logs nothing about syncing once stopped', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        lines.push(chunk.toString());
        done();
      },
    });
    const controller = new Controller({
      options: { admissionTimeoutMs: 300_000, statusIntervalMs: 1000 },
      clock: systemClock,
      log: createLogger('info', sink),
      metrics: {
        statusWrites: () => undefined,
        nodePatches: () => undefined,
        admitted: () => undefined,
        watchRestart: () => undefined,
        prePulls: () => undefined,
      },
      kube: KubeClient.load(server.adminKubeconfig()),
    });
    // Every list answers after 400 ms: the stop lands while they are in flight.
    server.faults.setLatency(400);
    const started = controller.start().catch(() => undefined);
    await sleep(50);
    await controller.stop();
    await Promise.race([started, sleep(3000)]);
    await sleep(600);
    server.faults.setLatency(0);
    expect(lines.join('')).not.toMatch(/informers synced/);
    expect(controller.leading).toBe(false);
  });
});
