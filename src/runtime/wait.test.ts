// Waiting for the runtime at start, on a ManualClock: a fake runtime that is stopped (nothing
// answers on its socket) and appears later; the backoff as an exact sequence; the log's first
// line and then one a minute; SIGTERM while sleeping and while an attempt is in flight; errors
// that waiting cannot fix.
import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { ManualClock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import { createLogger } from '../telemetry/logger.ts';
import { pollUntil } from '../testing/poll.ts';
import { FakeRuntime, detectedFake, detectedFakeSocket } from './testing/fake.ts';
import { type ConnectedRuntime, connectRuntime, waitForRuntime } from './wait.ts';

interface Line {
  level: string;
  msg: string;
  [field: string]: unknown;
}

function capture(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const raw of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(raw) as Line);
      done();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

/** Lets the attempt under way fail and go to sleep: resolves once `count` sleeps were asked. */
async function sleeping(clock: ManualClock, count: number): Promise<void> {
  await pollUntil(`${count} sleeps`, () => clock.sleeps.length >= count && clock.waiting > 0, {
    timeoutMs: 5000,
    intervalMs: 1,
  });
}

function stoppedRuntime(): FakeRuntime {
  const runtime = new FakeRuntime();
  runtime.stop();
  return runtime;
}

describe('waitForRuntime', () => {
  it('retries with capped exponential backoff until the runtime appears, then proceeds', async () => {
    const clock = new ManualClock();
    const runtime = stoppedRuntime();
    const { log, lines } = capture();
    const up: boolean[] = [];
    const waiting = waitForRuntime(() => connectRuntime({ detect: detectedFakeSocket(runtime) }), {
      clock,
      log,
      onUp: (value) => up.push(value),
    });
    for (let n = 1; n <= 8; n++) {
      await sleeping(clock, n);
      await clock.next();
    }
    await sleeping(clock, 9);
    expect(clock.sleeps).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    runtime.start();
    await clock.next();
    const connected = await waiting;
    expect(connected?.info).toMatchObject({ name: 'fake', endpoint: 'unix:///fake/runtime.sock' });
    expect(connected?.detected.runtime).toBe(runtime);
    expect(up).toEqual([...Array<boolean>(9).fill(false), true]);

    // The first failure, then at most one line a minute: failures at 0, 1, 3, 7, 15, 31, 61, 91
    // and 121 s are logged at 0, 61 and 121 s.
    const warned = lines.filter((l) => l.msg === 'waiting for the container runtime');
    expect(warned.map((l) => [l.attempts, l.waitedSeconds, l.retryInSeconds])).toEqual([
      [1, 0, 1],
      [7, 61, 30],
      [9, 121, 30],
    ]);
    expect(warned[0]).toMatchObject({ level: 'warn', code: 'ERR_RUNTIME_NOT_DETECTED' });
    expect(warned[0]?.reason).toContain('unix:///fake/runtime.sock: connect ECONNREFUSED');
    expect(lines.at(-1)).toMatchObject({
      level: 'info',
      msg: 'container runtime answered',
      attempts: 10,
      waitedSeconds: 151,
    });
  });

  it('connects at once, without a sleep or a log line, when the runtime answers', async () => {
    const clock = new ManualClock();
    const { log, lines } = capture();
    const up: boolean[] = [];
    const connected = await waitForRuntime(
      () => connectRuntime({ detect: detectedFakeSocket(new FakeRuntime()) }),
      { clock, log, onUp: (value) => up.push(value) },
    );
    expect(connected?.info.name).toBe('fake');
    expect(clock.sleeps).toEqual([]);
    expect(lines).toEqual([]);
    expect(up).toEqual([true]);
  });

  it('waits while the runtime is detected but does not answer its first call', async () => {
    const clock = new ManualClock();
    const { log } = capture();
    // A runtime found on its socket whose info() fails: each attempt gets a fresh adapter, as
    // detection builds one per attempt; the failed one is closed.
    const adapters: FakeRuntime[] = [];
    const waiting = waitForRuntime(
      () =>
        connectRuntime({
          detect: () => {
            const adapter = new FakeRuntime();
            if (adapters.length < 2) adapter.stop();
            adapters.push(adapter);
            return detectedFake(adapter)();
          },
        }),
      { clock, log },
    );
    await sleeping(clock, 1);
    await clock.next();
    await sleeping(clock, 2);
    await clock.next();
    expect((await waiting)?.detected.runtime).toBe(adapters[2]);
    expect(adapters.map((a) => a.answering)).toEqual([false, false, true]);
    expect(clock.sleeps).toEqual([1000, 2000]);
  });

  it('stops waiting when aborted while sleeping (SIGTERM), with nothing left open', async () => {
    const clock = new ManualClock();
    const runtime = stoppedRuntime();
    const aborted = new AbortController();
    const attempts: number[] = [];
    const waiting = waitForRuntime(
      () => {
        attempts.push(clock.now());
        return connectRuntime({ detect: detectedFakeSocket(runtime) });
      },
      { clock, log: capture().log, signal: aborted.signal },
    );
    await sleeping(clock, 1);
    aborted.abort();
    await expect(waiting).resolves.toBeUndefined();
    expect(clock.waiting).toBe(0);
    expect(attempts).toEqual([0]);
  });

  it('returns at once when aborted during an attempt, and closes what that attempt brings', async () => {
    const clock = new ManualClock();
    const aborted = new AbortController();
    const runtime = new FakeRuntime();
    let answer: (value: ConnectedRuntime) => void = () => undefined;
    const waiting = waitForRuntime(
      () =>
        new Promise<ConnectedRuntime>((resolve) => {
          answer = resolve;
        }),
      { clock, log: capture().log, signal: aborted.signal },
    );
    aborted.abort();
    await expect(waiting).resolves.toBeUndefined();
    expect(runtime.answering).toBe(true);
    answer(await connectRuntime({ detect: detectedFake(runtime) }));
    await pollUntil('the late connection closed', () => !runtime.answering, {
      timeoutMs: 5000,
      intervalMs: 1,
    });
  });

  it('throws at once what waiting cannot fix: --runtime naming the other protocol', async () => {
    const clock = new ManualClock();
    const runtime = new FakeRuntime();
    const waiting = waitForRuntime(
      () => connectRuntime({ detect: detectedFakeSocket(runtime), protocol: 'docker' }),
      { clock, log: capture().log },
    );
    await expect(waiting).rejects.toMatchObject({
      code: 'ERR_USAGE',
      message: '--runtime docker was given, but unix:///fake/runtime.sock speaks cri',
    });
    expect(clock.sleeps).toEqual([]);
    expect(runtime.answering).toBe(false); // closed
  });

  it('throws errors that are not retryable, and errors that are not prepull’s, without waiting', async () => {
    const clock = new ManualClock();
    const log = capture().log;
    await expect(
      waitForRuntime(() => Promise.reject(new PrepullError('ERR_UNSUPPORTED', 'tcp')), {
        clock,
        log,
      }),
    ).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await expect(
      waitForRuntime(() => Promise.reject(new TypeError('a bug')), { clock, log }),
    ).rejects.toThrow('a bug');
    expect(clock.sleeps).toEqual([]);
  });
});
