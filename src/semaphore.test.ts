// The shared concurrency limit: permits, first-come order, waits a signal abandons, and idle().
import { describe, expect, it } from '@jest/globals';
import { Semaphore } from './semaphore.ts';

describe('Semaphore', () => {
  it('hands out permits up to its limit and the rest in arrival order', async () => {
    const semaphore = new Semaphore(2);
    const a = await semaphore.acquire();
    await semaphore.acquire();
    const order: string[] = [];
    const c = semaphore.acquire().then((release) => {
      order.push('c');
      return release;
    });
    const d = semaphore.acquire().then((release) => {
      order.push('d');
      return release;
    });
    expect(semaphore.waiting).toBe(2);
    a();
    a(); // a second release of the same permit does nothing
    (await c)();
    await d;
    expect(order).toEqual(['c', 'd']);
    expect(semaphore.inUse).toBe(2);
  });

  it('drops a waiter whose signal aborts', async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const controller = new AbortController();
    const waiting = semaphore.acquire(controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(semaphore.waiting).toBe(0);
    release();
    expect(semaphore.inUse).toBe(0);
    await expect(semaphore.acquire(controller.signal)).rejects.toThrow('stop');
  });

  it('resolves idle() at once when no permit is in use, else when the last one is released', async () => {
    const semaphore = new Semaphore(1);
    await semaphore.idle();
    const first = await semaphore.acquire();
    const second = semaphore.acquire();
    let idle = false;
    const waiting = semaphore.idle().then(() => (idle = true));
    first(); // the permit passes to the waiter: still in use
    const release = await second;
    await Promise.resolve();
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(idle).toBe(true);
    expect(semaphore.inUse).toBe(0);
    release(); // a second release neither goes below zero nor wakes anyone
    expect(semaphore.inUse).toBe(0);
  });

  it('refuses a limit below one', () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});
