// Runtime detection against the real daemons: containerd's socket is recognised as CRI (and
// gets containerd's extras), Docker's as Docker Engine, by protocol alone; with nothing
// answering, one error lists every socket tried and why.
import { beforeAll, expect, it } from '@jest/globals';
import { detectRuntime } from '../../src/runtime/detect.ts';
import { isPrepullError } from '../../src/errors.ts';
import { sharedHarness, type HarnessInfo } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';

describeIntegration('runtime detection', () => {
  let h: HarnessInfo;
  beforeAll(() => {
    h = sharedHarness();
  });

  it('finds containerd by CRI Version after passing over missing sockets', async () => {
    const detected = await detectRuntime({
      candidates: [`${h.root}/no-such.sock`, h.containerd!.socket, h.docker!.socket],
    });
    try {
      expect(detected.found).toMatchObject({ kind: 'cri', runtimeName: 'containerd' });
      expect(detected.endpoint).toBe(`unix://${h.containerd!.socket}`);
      expect(detected.skipped).toEqual([
        { endpoint: `unix://${h.root}/no-such.sock`, reason: 'no such socket' },
      ]);
      expect(detected.runtime.capabilities).toEqual({
        pin: true,
        deletionEvents: true,
        progress: true,
      });
      expect((await detected.runtime.info()).sandboxImage).toBe(h.containerd!.sandboxImage);
      expect(detected.description).toMatch(/^containerd 1\.6\.\S+ \(CRI v1\) at unix:\/\//);
    } finally {
      await detected.runtime.close();
    }
  });

  it('finds Docker Engine by GET /_ping on an explicit endpoint', async () => {
    const detected = await detectRuntime({ endpoint: `unix://${h.docker!.socket}` });
    try {
      expect(detected.found).toMatchObject({ kind: 'docker', apiVersion: '1.41' });
      expect(detected.runtime.capabilities.pin).toBe(false);
      expect((await detected.runtime.info()).name).toBe('docker');
    } finally {
      await detected.runtime.close();
    }
  });

  it('lists every socket tried when none answers', async () => {
    let caught: unknown;
    try {
      await detectRuntime({ candidates: [`${h.root}/a.sock`, h.root], probeTimeoutMs: 1000 });
    } catch (error) {
      caught = error;
    }
    expect(isPrepullError(caught, 'ERR_RUNTIME_NOT_DETECTED')).toBe(true);
    expect((caught as Error).message).toContain(`unix://${h.root}/a.sock: no such socket`);
    expect((caught as Error).message).toContain(`unix://${h.root}: not a socket`);
  });
});
