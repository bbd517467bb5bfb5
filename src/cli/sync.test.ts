import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrepullError } from '../errors.ts';
import { FakeRuntime, detectedFake } from '../runtime/testing/fake.ts';
import type { SyncResult } from './output.ts';
import { runSync } from './sync.ts';

const IMAGE = 'r.io/shop/big:1';

/**
 * A runtime whose deletion subscription is still being set up, as containerd's is until it
 * confirms the subscription: it fails only when the runtime is closed under it.
 */
class SlowSubscribingRuntime extends FakeRuntime {
  subscribing: Promise<void>;
  #subscribed: () => void = () => undefined;
  #failSubscription: (error: Error) => void = () => undefined;

  constructor() {
    // About 10 s of download: still pulling when the signal comes.
    super({ bytesPerMs: 100 });
    this.subscribing = new Promise((resolve) => {
      this.#subscribed = resolve;
    });
    this.publish(IMAGE, { digest: `sha256:${'a'.repeat(64)}`, id: 'sha256:b', size: 1_000_000 });
  }

  override watchDeletions(): Promise<() => void> {
    this.#subscribed();
    return new Promise((_resolve, reject) => {
      this.#failSubscription = reject;
    });
  }

  override async close(): Promise<void> {
    this.#failSubscription(
      new PrepullError('ERR_RUNTIME_FAILED', 'subscribing: Channel has been shut down'),
    );
    await super.close();
  }
}

async function interruptedDuringStart(once: boolean): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'prepull-sync-test-'));
  try {
    const file = join(dir, 'shop.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: 'shop', namespace: 'shop' },
        spec: { images: [{ image: IMAGE }] },
      }),
    );
    const runtime = new SlowSubscribingRuntime();
    const detect = detectedFake(runtime);
    const signals = new EventEmitter();
    let out = '';
    const io = { out: (t: string) => (out += t), err: () => undefined };
    const args = ['-f', file, '-o', 'json', '--log-level', 'silent', ...(once ? ['--once'] : [])];
    const running = runSync(args, io, signals, detect);
    await runtime.subscribing;
    signals.emit('SIGTERM');
    return { code: await running, out };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('prepull sync interrupted while starting', () => {
  it('with --once, prints the partial result and exits 1 instead of failing on the closed runtime', async () => {
    const { code, out } = await interruptedDuringStart(true);
    expect(code).toBe(1);
    const result = JSON.parse(out) as SyncResult;
    expect(result.ok).toBe(false);
    expect(result.images.find((i) => i.image === IMAGE)?.state).not.toBe('Present');
  });

  it('without --once, stops and exits 0', async () => {
    expect((await interruptedDuringStart(false)).code).toBe(0);
  });
});
