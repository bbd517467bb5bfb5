import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../clock.ts';
import { PrepullError, isPrepullError } from '../errors.ts';
import { type DetectOptions, detectRuntime } from '../runtime/detect.ts';
import { FakeRuntime, detectedFake, detectedFakeSocket } from '../runtime/testing/fake.ts';
import { main } from './main.ts';
import type { SyncResult } from './output.ts';
import { SYNC_RUNTIME_ADVICE, runSync } from './sync.ts';
import { pollUntil } from '../testing/poll.ts';
import { getText, jsonLogSink } from '../telemetry/testing/log-sink.ts';

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
    const running = runSync(args, io, signals, { detect });
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

const POLL = { timeoutMs: 10_000, intervalMs: 20 };

describe('prepull sync releasing what the files drop', () => {
  it('unpins an image dropped from a file while running, and prints it once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prepull-sync-test-'));
    const signals = new EventEmitter();
    let running: Promise<number> | undefined;
    try {
      const file = join(dir, 'shop.yaml');
      const write = (images: string[]): void => {
        writeFileSync(
          file,
          JSON.stringify({
            apiVersion: 'prepull.dev/v1alpha1',
            kind: 'PrePull',
            metadata: { name: 'shop', namespace: 'shop' },
            spec: { images: images.map((image) => ({ image })), verify: 'None' },
          }),
        );
      };
      const runtime = new FakeRuntime();
      const [a, b] = ['r.io/shop/a:1', 'r.io/shop/b:1'];
      runtime.publish(a, {
        digest: `sha256:${'a'.repeat(64)}`,
        id: `sha256:${'1'.repeat(64)}`,
        size: 1,
      });
      runtime.publish(b, {
        digest: `sha256:${'b'.repeat(64)}`,
        id: `sha256:${'2'.repeat(64)}`,
        size: 1,
      });
      write([a, b]);
      const outputs: string[] = [];
      const io = { out: (t: string) => outputs.push(t), err: () => undefined };
      running = runSync(['-f', file, '--log-level', 'silent'], io, signals, {
        detect: detectedFake(runtime),
      });
      await pollUntil(
        'the first result',
        () => outputs.some((o) => o.includes('2/2 images present')),
        POLL,
      );
      write([a]);
      await pollUntil(
        'a result after the release',
        () => outputs.some((o) => o.includes('released:')),
        POLL,
      );
      const printed = outputs.find((o) => o.includes('released:'))!;
      expect(printed).toContain(`released: ${b} Unpinned`);
      expect(printed).toContain('1/1 images present');
      expect((await runtime.imageStatus(b))?.pinned).toBe(false);
      expect((await runtime.imageStatus(a))?.pinned).toBe(true);
      // Touching the file again prints no release twice.
      write([a]);
      const before = outputs.length;
      await pollUntil('another result', () => outputs.length > before, POLL);
      expect(outputs.slice(before).join('')).not.toContain('released:');
    } finally {
      signals.emit('SIGTERM');
      if (running !== undefined) expect(await running).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('prepull sync with no runtime answering at start', () => {
  const IMG = 'r.io/shop/web:1';

  function setUp(): { dir: string; file: string; runtime: FakeRuntime } {
    const dir = mkdtempSync(join(tmpdir(), 'prepull-sync-test-'));
    const file = join(dir, 'shop.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: 'shop', namespace: 'shop' },
        spec: { images: [{ image: IMG }], verify: 'None' },
      }),
    );
    const runtime = new FakeRuntime();
    runtime.publish(IMG, {
      digest: `sha256:${'c'.repeat(64)}`,
      id: `sha256:${'3'.repeat(64)}`,
      size: 1,
    });
    runtime.stop();
    return { dir, file, runtime };
  }

  it('without --once, serves /healthz, is not ready while it waits, and reconciles once the runtime answers', async () => {
    const { dir, file, runtime } = setUp();
    const signals = new EventEmitter();
    const { log, lines } = jsonLogSink();
    let out = '';
    const io = { out: (t: string) => (out += t), err: () => undefined };
    let settled = false;
    const running = runSync(['-f', file, '--metrics-address', '127.0.0.1:0'], io, signals, {
      detect: detectedFakeSocket(runtime),
      log,
      runtimeBackoff: { initialMs: 5, maxMs: 20 },
    });
    void running.finally(() => (settled = true));
    try {
      const serving = await pollUntil(
        'the metrics address',
        () => lines.find((l) => l.msg === 'serving /metrics, /healthz, /readyz'),
        POLL,
      );
      const base = `http://${String(serving.address)}`;
      await pollUntil(
        'the first failed attempt',
        () => lines.some((l) => l.msg === 'waiting for the container runtime'),
        POLL,
      );
      expect(await getText(base, '/healthz')).toEqual({ status: 200, text: 'ok\n' });
      expect(await getText(base, '/readyz')).toEqual({
        status: 503,
        text: 'waiting for the container runtime\n',
      });
      expect((await getText(base, '/metrics')).text).toMatch(/^prepull_runtime_up 0$/m);
      expect(settled).toBe(false);
      const waiting = lines.filter((l) => l.msg === 'waiting for the container runtime');
      expect(waiting).toHaveLength(1); // the first failure; then one a minute at most
      expect(waiting[0]?.reason).toContain(SYNC_RUNTIME_ADVICE.given);
      expect(out).toBe('');

      runtime.start();
      await pollUntil('the first result', () => out.includes('1/1 images present'), POLL);
      expect(await getText(base, '/readyz')).toEqual({ status: 200, text: 'ok\n' });
      expect((await getText(base, '/metrics')).text).toMatch(/^prepull_runtime_up 1$/m);
      expect(lines.some((l) => l.msg === 'container runtime answered')).toBe(true);
    } finally {
      signals.emit('SIGTERM');
      expect(await running).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without --once, exits 0 on SIGTERM while it waits', async () => {
    const { dir, file, runtime } = setUp();
    const signals = new EventEmitter();
    const { log, lines } = jsonLogSink();
    // A clock that never moves: the wait ends only by the signal.
    const clock = new ManualClock();
    try {
      const running = runSync(
        ['-f', file],
        { out: () => undefined, err: () => undefined },
        signals,
        {
          detect: detectedFakeSocket(runtime),
          log,
          clock,
        },
      );
      await pollUntil('waiting', () => clock.waiting > 0, POLL);
      signals.emit('SIGTERM');
      expect(await running).toBe(0);
      expect(clock.sleeps).toEqual([1000]);
      expect(lines.map((l) => l.msg)).toContain('exiting');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with --once, fails at once with the reason and sync’s own advice', async () => {
    const { dir, file, runtime } = setUp();
    const clock = new ManualClock();
    try {
      const running = runSync(
        ['-f', file, '--once', '--log-level', 'silent'],
        { out: () => undefined, err: () => undefined },
        new EventEmitter(),
        { detect: detectedFakeSocket(runtime), clock },
      );
      const error = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPrepullError(error, 'ERR_RUNTIME_NOT_DETECTED')).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain('unix:///fake/runtime.sock: connect ECONNREFUSED');
      expect(message).toContain(SYNC_RUNTIME_ADVICE.given);
      expect(message).not.toContain('agent');
      expect(clock.sleeps).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('prepull sync: mistakes said before the runtime is touched, in words for this machine', () => {
  let dir: string;
  let prePull: string;
  const quiet = { out: () => undefined, err: () => undefined };
  /** A detection that must not happen: the flags are wrong before any runtime is asked. */
  const noDetection = (): never => {
    throw new Error('the runtime was asked for');
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'prepull-sync-usage-'));
    prePull = join(dir, 'shop.yaml');
    writeFileSync(
      prePull,
      JSON.stringify({
        apiVersion: 'prepull.dev/v1alpha1',
        kind: 'PrePull',
        metadata: { name: 'shop', namespace: 'shop' },
        spec: { images: [{ image: IMAGE }], verify: 'None' },
      }),
    );
    symlinkSync(join(dir, 'loop'), join(dir, 'loop'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  // Paths are relative to the test's directory (`at`); the messages name them as given.
  const at = (name: string): string => join(dir, name);
  it.each([
    [
      () => ['-f', at('missing.yaml')],
      /^-f \S+missing\.yaml: cannot read it: no such file or directory$/,
    ],
    [() => ['-f', at('loop')], /^-f \S+loop: cannot read it: .*symbolic links/],
    [
      () => ['-f', prePull, '--docker-config', at('none.json')],
      /^--docker-config \S+none\.json: cannot read the file: no such file or directory$/,
    ],
    [
      () => ['-f', prePull, '--registry-ca', `r.io=${at('ca.pem')}`],
      /^--registry-ca r\.io=\S+ca\.pem: cannot read the file: no such file or directory$/,
    ],
  ])('case %# is a usage error naming the path', async (flags, message) => {
    const argv = [...flags(), '--once', '--log-level', 'silent'];
    await expect(
      runSync(argv, quiet, new EventEmitter(), { detect: noDetection }),
    ).rejects.toMatchObject({
      code: 'ERR_USAGE',
      message: expect.stringMatching(message),
    });
  });

  it('exits 2 for a missing -f path, naming it', async () => {
    let err = '';
    const io = { out: () => undefined, err: (t: string) => (err += t) };
    const missing = join(dir, 'typo.yaml');
    expect(await main(['sync', '-f', missing, '--once', '--log-level', 'silent'], io)).toBe(2);
    expect(err).toBe(
      `prepull sync: -f ${missing}: cannot read it: no such file or directory (ERR_USAGE)\n`,
    );
  });

  it("gives sync's advice when no runtime answers, not the agent's about mounting sockets", async () => {
    const nowhere = (options?: DetectOptions): ReturnType<typeof detectRuntime> =>
      detectRuntime({ ...options, candidates: [join(dir, 'none.sock')] });
    const args = ['-f', prePull, '--once', '--log-level', 'silent'];
    const probed = runSync(args, quiet, new EventEmitter(), { detect: nowhere });
    await expect(probed).rejects.toMatchObject({ code: 'ERR_RUNTIME_NOT_DETECTED' });
    const message = await probed.catch((error: unknown) => (error as Error).message);
    expect(message).toMatch(
      /none\.sock: no such socket\); is a container runtime running on this machine\? Start it, or give its socket with --runtime-endpoint/,
    );
    expect(message).not.toMatch(/agent|mount/);
    const given = await runSync(
      [...args, '--runtime-endpoint', `unix://${dir}/given.sock`],
      quiet,
      new EventEmitter(),
      { detect: nowhere },
    ).catch((error: unknown) => (error as Error).message);
    expect(given).toMatch(
      /given\.sock: no such socket\); check that the runtime is running and listens on that socket/,
    );
    expect(given).not.toMatch(/agent|mount/);
  });

  it('fails a -f file that holds no PrePull, naming what it holds, instead of "ok, 0 images"', async () => {
    const pod = join(dir, 'pod.yaml');
    writeFileSync(pod, 'apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n');
    let out = '';
    const io = { out: (t: string) => (out += t), err: () => undefined };
    const code = await runSync(
      ['-f', pod, '--once', '-o', 'json', '--log-level', 'silent'],
      io,
      new EventEmitter(),
      { detect: detectedFake(new FakeRuntime()) },
    );
    const result = JSON.parse(out) as SyncResult;
    expect(result.fileErrors).toEqual([
      {
        code: 'ERR_PREPULL_INVALID',
        message: `${pod}: no PrePull (apiVersion prepull.dev/v1alpha1) in the file: it holds Pod`,
      },
    ]);
    expect(result.ok).toBe(false);
    expect(code).toBe(1);
  });
});

describe('prepull sync with every pull slot held', () => {
  it('reports an image waiting for a slot as Queued, in the log and in the table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prepull-sync-test-'));
    const signals = new EventEmitter();
    try {
      const [hungA, hungB, small] = ['r.io/shop/hung-a:1', 'r.io/shop/hung-b:1', 'r.io/shop/s:1'];
      const runtime = new FakeRuntime();
      [hungA, hungB, small].forEach((ref, i) => {
        runtime.publish(ref, {
          digest: `sha256:${String(i + 1).repeat(64)}`,
          id: `sha256:${String(i + 4).repeat(64)}`,
          size: 1000,
        });
      });
      runtime.hang(hungA);
      runtime.hang(hungB);
      const file = join(dir, 'shop.yaml');
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'prepull.dev/v1alpha1',
          kind: 'PrePull',
          metadata: { name: 'shop', namespace: 'shop' },
          spec: { images: [hungA, hungB, small].map((image) => ({ image })), verify: 'None' },
        }),
      );
      const { log, lines } = jsonLogSink();
      let out = '';
      const io = { out: (t: string) => (out += t), err: () => undefined };
      const running = runSync(['-f', file, '--once', '--pull-concurrency', '2'], io, signals, {
        detect: detectedFake(runtime),
        log,
      });
      const queued = await pollUntil(
        'the small image Queued',
        () =>
          lines.find((l) => l.msg === 'image state' && l.image === small && l.reason === 'Queued'),
        POLL,
      );
      expect(queued).toMatchObject({ state: 'Missing' });
      signals.emit('SIGTERM');
      expect(await running).toBe(1);
      const row = out.split('\n').find((l) => l.startsWith(small));
      expect(row).toMatch(
        /\sMissing\s.*\sQueued: waiting for a pull slot: 2 pulls run at once on this node, and all are busy$/,
      );
    } finally {
      // Stops a sync left running by a failed expectation.
      signals.emit('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
