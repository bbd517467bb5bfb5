import { describe, expect, it } from '@jest/globals';
import { pollUntil } from './poll.ts';

describe('pollUntil', () => {
  it('returns the first answer that is neither undefined nor false', async () => {
    const answers = [undefined, false, 0, 7];
    const value = await pollUntil('an answer', () => answers.shift(), {
      timeoutMs: 1000,
      intervalMs: 1,
    });
    expect(value).toBe(0);
    expect(answers).toEqual([7]);
  });

  it('times out naming what it waited for, after checking at the deadline', async () => {
    const checks: number[] = [];
    const started = Date.now();
    await expect(
      pollUntil('the thing', () => void checks.push(Date.now() - started), {
        timeoutMs: 100,
        intervalMs: 40,
      }),
    ).rejects.toThrow('the thing: not within 100 ms');
    // Not given up an interval early: the last check comes at the deadline (timers allowing).
    expect(checks.at(-1)).toBeGreaterThanOrEqual(95);
  });

  it("ends at a check's error unless told to retry, then keeps the last as the cause", async () => {
    const broken = new Error('broken');
    await expect(
      pollUntil('x', () => Promise.reject(broken), { timeoutMs: 1000, intervalMs: 1 }),
    ).rejects.toBe(broken);

    let calls = 0;
    const answered = await pollUntil(
      'y',
      () => {
        if (++calls < 3) throw broken;
        return 'up';
      },
      { timeoutMs: 1000, intervalMs: 1, retryErrors: true },
    );
    expect([answered, calls]).toEqual(['up', 3]);

    const timedOut = await pollUntil('z', () => Promise.reject(broken), {
      timeoutMs: 20,
      intervalMs: 5,
      retryErrors: true,
    }).catch((error: unknown) => error);
    expect(timedOut).toMatchObject({ message: 'z: not within 20 ms', cause: broken });
  });
});
