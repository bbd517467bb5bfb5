// containerd's extras without a daemon: ingest accounting for progress, the poller on a manual
// clock, and decoding the ImageDelete payload.
import { describe, expect, it } from '@jest/globals';
import { ManualClock } from '../../clock.ts';
import type { PullProgress } from '../types.ts';
import { decodeImageName, type IngestStatus } from './native.ts';
import { IngestTally, pollIngests } from './progress.ts';

// Lets the poller's awaits (listing, tally, next sleep) run between clock moves.
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const s = (ref: string, offset: number, total: number): IngestStatus => ({ ref, offset, total });

describe('IngestTally', () => {
  it('counts bytes written since the first listing, finished ingests at their total', () => {
    const tally = new IngestTally();
    expect(tally.observe([s('stale', 70, 100)])).toBe(0); // earlier work: the baseline
    expect(tally.observe([s('stale', 70, 100), s('a', 10, 50)])).toBe(10);
    expect(tally.observe([s('stale', 80, 100), s('a', 40, 50), s('b', 5, 20)])).toBe(55);
    // a and b committed (gone from the list): counted in full
    expect(tally.observe([s('stale', 80, 100)])).toBe(80);
    // the resumed stale ingest finishes: only its growth since the start counts
    expect(tally.observe([])).toBe(100);
  });

  it('never goes backwards, even when an ingest restarts', () => {
    const tally = new IngestTally();
    tally.observe([]);
    expect(tally.observe([s('a', 30, 50)])).toBe(30);
    expect(tally.observe([s('a', 10, 50)])).toBe(30);
  });
});

describe('pollIngests', () => {
  it('polls on the clock, reports increases only, and takes a last look when stopped', async () => {
    const clock = new ManualClock();
    const listings = [[], [s('a', 10, 100)], [s('a', 10, 100)], [s('a', 60, 100)], []];
    let calls = 0;
    const reports: PullProgress[] = [];
    const poller = pollIngests({
      clock,
      intervalMs: 100,
      list: () => Promise.resolve(listings[Math.min(calls++, listings.length - 1)] ?? []),
      onProgress: (p) => reports.push(p),
    });
    await flush();
    for (let i = 0; i < 3; i++) {
      await clock.advance(100);
      await flush();
    }
    expect(reports).toEqual([{ bytesDone: 10 }, { bytesDone: 60 }]);
    await poller.stop();
    expect(reports.at(-1)).toEqual({ bytesDone: 100 });
    expect(clock.sleeps.every((ms) => ms === 100)).toBe(true);
  });

  it('skips a failed listing', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const reports: PullProgress[] = [];
    const poller = pollIngests({
      clock,
      intervalMs: 50,
      list: () => {
        calls++;
        if (calls === 2) return Promise.reject(new Error('unavailable'));
        return Promise.resolve(calls === 3 ? [s('a', 5, 10)] : []);
      },
      onProgress: (p) => reports.push(p),
    });
    await flush();
    await clock.advance(50);
    await flush();
    await clock.advance(50);
    await flush();
    await poller.stop();
    expect(reports).toEqual([{ bytesDone: 5 }, { bytesDone: 10 }]);
  });
});

describe('decodeImageName', () => {
  it('reads field 1 of an ImageDelete, skipping other fields', () => {
    const name = Buffer.from('127.0.0.1:5000/team/app:v1');
    const message = Buffer.concat([
      Buffer.from([0x10, 0x96, 0x01]), // field 2, varint 150
      Buffer.from([0x0a, name.length]),
      name,
    ]);
    expect(decodeImageName(message)).toBe('127.0.0.1:5000/team/app:v1');
  });

  it('reads a name longer than 127 bytes (two-byte length)', () => {
    const name = Buffer.from(`r.example/${'a'.repeat(150)}@sha256:${'0'.repeat(64)}`);
    const message = Buffer.concat([
      Buffer.from([0x0a, (name.length & 0x7f) | 0x80, name.length >> 7]),
      name,
    ]);
    expect(decodeImageName(message)).toBe(name.toString());
  });

  it('gives undefined for truncated or empty payloads', () => {
    expect(decodeImageName(Buffer.alloc(0))).toBeUndefined();
    expect(decodeImageName(Buffer.from([0x0a, 0x10, 0x61]))).toBeUndefined();
  });
});
