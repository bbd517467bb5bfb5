import { describe, expect, it } from '@jest/globals';
import { ManualClock, Naps, systemClock } from './clock.ts';

describe('ManualClock', () => {
  it('wakes sleepers in time order as time advances, and records each sleep', async () => {
    const clock = new ManualClock(1000);
    const woke: string[] = [];
    void clock.sleep(300).then(() => woke.push(`b@${clock.now()}`));
    void clock.sleep(100).then(() => woke.push(`a@${clock.now()}`));
    await clock.advance(50);
    expect(woke).toEqual([]);
    await clock.advance(300);
    expect(woke).toEqual(['a@1100', 'b@1300']);
    expect(clock.now()).toBe(1350);
    expect(clock.sleeps).toEqual([300, 100]);
  });

  it('rejects a sleep when its signal aborts, and cycles the given random values', async () => {
    const clock = new ManualClock(0, [0.1, 0.9]);
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.waiting).toBe(0);
    expect([clock.random(), clock.random(), clock.random()]).toEqual([0.1, 0.9, 0.1]);
  });

  it('next() jumps to the earliest sleeper', async () => {
    const clock = new ManualClock();
    let done = false;
    void clock.sleep(5000).then(() => (done = true));
    expect(await clock.next()).toBe(true);
    expect(done).toBe(true);
    expect(clock.now()).toBe(5000);
    expect(await clock.next()).toBe(false);
  });
});

describe('systemClock', () => {
  it('sleeps and aborts', async () => {
    const start = Date.now();
    await systemClock.sleep(20);
    expect(Date.now() - start).toBeGreaterThanOrEqual(15);
    const controller = new AbortController();
    const sleeping = systemClock.sleep(10_000, controller.signal);
    controller.abort(new Error('cancelled'));
    await expect(sleeping).rejects.toThrow('cancelled');
  });
});

describe('Naps', () => {
  it('sleeps the whole time unless woken, and never again once stopped', async () => {
    const clock = new ManualClock(0);
    const naps = new Naps(clock);
    const whole = naps.sleep(1000);
    await clock.advance(1000);
    expect(await whole).toBe(true);
    expect(clock.now()).toBe(1000);

    const woken = naps.sleep(60_000);
    naps.wake();
    expect(await woken).toBe(true);
    expect(clock.now()).toBe(1000);

    const stopped = naps.sleep(60_000);
    naps.stop();
    expect(await stopped).toBe(false);
    expect(naps.stopped).toBe(true);
    expect(await naps.sleep(10)).toBe(false);
    // A wake with no wait in progress changes nothing.
    naps.wake();
  });
});
