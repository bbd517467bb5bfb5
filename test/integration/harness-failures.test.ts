// The harness's promise when a component does not come up: the error names the component, says
// what was awaited, and shows the component's log tail — so a broken CI run explains itself.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HarnessError, startProcess, waitUntil } from '../harness/processes.ts';
import { Registry } from '../harness/registry.ts';
import { describeIntegration } from '../harness/jest.ts';

describeIntegration('harness failure reports', () => {
  let root: string;

  beforeAll(() => {
    // Not under the harness prefix: these processes are cleaned up by the tests themselves.
    root = mkdtempSync(join(tmpdir(), 'harness-failures-'));
    mkdirSync(join(root, 'logs'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('names a component that exits during start-up and shows its log tail', async () => {
    const missing = join(root, 'no-such-cert.pem');
    const error = await Registry.create(root, {
      name: 'broken',
      tls: { caPem: '', caFile: missing, certFile: missing, keyFile: missing },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HarnessError);
    const harnessError = error as HarnessError;
    expect(harnessError.component).toBe('registry-broken');
    expect(harnessError.message).toMatch(/^registry-broken: exited \(code \d+/);
    expect(harnessError.message).toContain('before GET https://127.0.0.1:');
    // The registry's own complaint about the missing certificate, from its log.
    expect(harnessError.message).toContain('no-such-cert.pem');
  });

  it('names a component that does not become ready before its deadline', async () => {
    const proc = startProcess(root, 'sleeper', '/bin/sh', [
      '-c',
      'echo starting slowly; exec sleep 30',
    ]);
    try {
      const error = await waitUntil(
        'never ready',
        proc,
        () => Promise.resolve(undefined),
        500,
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HarnessError);
      expect((error as Error).message).toMatch(/^sleeper: not ready after 500 ms: never ready/);
      expect((error as Error).message).toContain('starting slowly');
    } finally {
      await proc.stop(1000);
    }
  });
});
