// sync's pull progress view, on a manual clock and a fake stream: on a terminal (the writes
// replayed on a small screen model that knows the two escape sequences the view uses), live lines
// below the log, redrawn in place and erased when done; elsewhere, a plain line every 10 s.
import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../clock.ts';
import type { ImageProgress, ImageReport } from '../image/report.ts';
import { FakeRuntime, detectedFake } from '../runtime/testing/fake.ts';
import { PLAIN_INTERVAL_MS, ProgressView, humanDuration } from './progress.ts';
import { runSync } from './sync.ts';

const MiB = 1024 * 1024;
const WEB = 'r.io/shop/web:1';
const DB = 'r.io/shop/db:2';

function report(image: string, state: ImageReport['state'], progress?: ImageProgress): ImageReport {
  return {
    image,
    written: image,
    requiredBy: ['shop/p'],
    state,
    reason: state,
    attempts: 0,
    ...(progress !== undefined ? { progress } : {}),
  };
}

/** What a terminal shows after the writes: lines, a cursor, cursor-up and erase-line. */
class Screen {
  readonly lines: string[] = [''];
  #row = 0;
  #column = 0;

  write(text: string): void {
    for (let at = 0; at < text.length;) {
      if (text.startsWith('\x1b[1A', at)) {
        this.#row = Math.max(0, this.#row - 1);
        at += 4;
      } else if (text.startsWith('\x1b[2K', at)) {
        this.lines[this.#row] = '';
        at += 4;
      } else if (text[at] === '\x1b') {
        throw new Error(`unexpected escape sequence at ${JSON.stringify(text.slice(at))}`);
      } else if (text[at] === '\n') {
        this.#row++;
        this.#column = 0;
        this.lines[this.#row] ??= '';
        at++;
      } else {
        const line = this.lines[this.#row] ?? '';
        this.lines[this.#row] =
          line.slice(0, this.#column).padEnd(this.#column) +
          text.charAt(at) +
          line.slice(this.#column + 1);
        this.#column++;
        at++;
      }
    }
  }

  /** The non-empty lines, top to bottom. */
  get shown(): string[] {
    return this.lines.filter((l) => l !== '');
  }
}

function terminal(columns?: number): { view: ProgressView; screen: Screen; clock: ManualClock } {
  const clock = new ManualClock(0);
  const screen = new Screen();
  const view = new ProgressView({
    clock,
    write: (text) => {
      screen.write(text);
    },
    terminal: { columns: () => columns },
  });
  return { view, screen, clock };
}

describe('ProgressView on a terminal', () => {
  it('draws a line per pulling image below the log, redrawn in place, and erases it when done', async () => {
    const { view, screen, clock } = terminal(120);
    view.print('{"msg":"runtime"}\n');
    view.update([
      report(WEB, 'Pulling', { bytes: 10 * MiB, totalBytes: 100 * MiB }),
      report(DB, 'Pulling'),
      report('r.io/shop/ok:1', 'Present'),
    ]);
    expect(screen.shown).toEqual([
      '{"msg":"runtime"}',
      `pulling ${WEB}  10.0 MiB / 100.0 MiB`,
      `pulling ${DB}  0s so far`,
    ]);

    await clock.advance(1000);
    view.update([
      report(WEB, 'Pulling', { bytes: 20 * MiB, totalBytes: 100 * MiB }),
      report(DB, 'Pulling', { bytes: 3 * MiB }),
    ]);
    // A log line lands above the live lines, which are drawn again below it.
    view.print('{"msg":"image state"}\n');
    expect(screen.shown).toEqual([
      '{"msg":"runtime"}',
      '{"msg":"image state"}',
      `pulling ${WEB}  20.0 MiB / 100.0 MiB  10.0 MiB/s  8s left`,
      `pulling ${DB}  3.0 MiB`,
    ]);

    // A second later, nothing new from the runtime: the rate is over the time that passed.
    await clock.advance(1000);
    view.tick();
    expect(screen.shown.slice(2)).toEqual([
      `pulling ${WEB}  20.0 MiB / 100.0 MiB  5.0 MiB/s  16s left`,
      `pulling ${DB}  3.0 MiB  0 B/s`,
    ]);

    view.update([report(WEB, 'Present'), report(DB, 'Pulling', { bytes: 4 * MiB })]);
    expect(screen.shown).toEqual([
      '{"msg":"runtime"}',
      '{"msg":"image state"}',
      `pulling ${DB}  4.0 MiB  1.0 MiB/s`,
    ]);
    view.update([report(WEB, 'Present'), report(DB, 'Present')]);
    expect(screen.shown).toEqual(['{"msg":"runtime"}', '{"msg":"image state"}']);
    view.print('{"msg":"stopped"}\n');
    expect(screen.shown).toEqual([
      '{"msg":"runtime"}',
      '{"msg":"image state"}',
      '{"msg":"stopped"}',
    ]);
  });

  it('measures the rate over the last 5 s: a stalled pull falls to 0 B/s and shows no time left', async () => {
    const { view, screen, clock } = terminal();
    for (let s = 0; s <= 10; s++) {
      view.update([report(WEB, 'Pulling', { bytes: s * 4 * MiB, totalBytes: 100 * MiB })]);
      await clock.advance(1000);
    }
    view.tick();
    // 40 MiB at 4 MiB/s; the last figure came a second ago: 16 MiB in the last 5 s.
    expect(screen.shown).toEqual([`pulling ${WEB}  40.0 MiB / 100.0 MiB  3.2 MiB/s  19s left`]);
    await clock.advance(6000);
    view.tick();
    expect(screen.shown).toEqual([`pulling ${WEB}  40.0 MiB / 100.0 MiB  0 B/s`]);
  });

  it('keeps each line within the terminal width, shortening the image name first', () => {
    const { view, screen } = terminal(50);
    const long = `registry.example.com:5000/team/a-very-long-repository-name/service:1.2.3`;
    view.update([report(long, 'Pulling', { bytes: 10 * MiB, totalBytes: 100 * MiB })]);
    const [line = ''] = screen.shown;
    expect(line.length).toBeLessThan(50);
    expect(line).toBe('pulling …name/service:1.2.3  10.0 MiB / 100.0 MiB');
  });

  it('clear() erases the live lines before the result is printed', () => {
    const { view, screen } = terminal();
    view.print('log\n');
    view.update([report(WEB, 'Pulling', { bytes: 1 })]);
    view.clear();
    expect(screen.shown).toEqual(['log']);
    view.clear();
    expect(screen.shown).toEqual(['log']);
  });
});

describe('ProgressView without a terminal', () => {
  it('writes a plain line per pulling image every 10 s, and nothing for a short pull', async () => {
    const clock = new ManualClock(0);
    const writes: string[] = [];
    const view = new ProgressView({ clock, write: (text) => writes.push(text) });
    view.update([report(WEB, 'Pulling', { bytes: 0, totalBytes: 100 * MiB })]);
    const at = new Map<number, string[]>();
    for (let s = 1; s <= 15; s++) {
      await clock.advance(1000);
      view.update([
        report(WEB, 'Pulling', { bytes: s * MiB, totalBytes: 100 * MiB }),
        ...(s >= 5 ? [report(DB, 'Pulling', { bytes: (s - 4) * 2 * MiB })] : []),
      ]);
      const before = writes.length;
      view.tick();
      if (writes.length > before) at.set(s, writes.slice(before));
    }
    // Each once it has pulled for PLAIN_INTERVAL_MS, then every PLAIN_INTERVAL_MS.
    expect([...at]).toEqual([
      [10, [`pulling ${WEB}  10.0 MiB / 100.0 MiB  1.0 MiB/s  1m30s left\n`]],
      [15, [`pulling ${DB}  22.0 MiB  2.0 MiB/s\n`]],
    ]);
    expect(PLAIN_INTERVAL_MS).toBe(10_000);
    // Done: no more lines for it.
    view.update([report(WEB, 'Present'), report(DB, 'Present')]);
    await clock.advance(PLAIN_INTERVAL_MS);
    view.tick();
    expect(writes).toHaveLength(2);
    expect(writes.join('')).not.toContain('\x1b');
    // Log lines, if any come this way, go out as they are.
    view.print('text\n');
    expect(writes.slice(2)).toEqual(['text\n']);
  });
});

describe('prepull sync with stderr on a terminal', () => {
  it('shows the pull live below the log lines, and erases it before the result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prepull-progress-test-'));
    try {
      const image = 'r.io/shop/big:1';
      const file = join(dir, 'shop.yaml');
      writeFileSync(
        file,
        JSON.stringify({
          apiVersion: 'prepull.dev/v1alpha1',
          kind: 'PrePull',
          metadata: { name: 'shop', namespace: 'shop' },
          spec: { images: [{ image }], verify: 'None' },
        }),
      );
      // 3 MiB at 1 MiB a second, reported every 100 ms (real time: runSync's clock).
      const runtime = new FakeRuntime({ bytesPerMs: 1024 * 1.024, progressIntervalMs: 100 });
      runtime.publish(image, {
        digest: `sha256:${'a'.repeat(64)}`,
        id: `sha256:${'1'.repeat(64)}`,
        size: 3 * MiB,
      });
      const screen = new Screen();
      let stderr = '';
      let stdout = '';
      const io = {
        out: (t: string) => (stdout += t),
        err: (t: string) => {
          stderr += t;
          screen.write(t);
        },
        errTerminal: { columns: () => 200 },
      };
      // JSON logs, so every line left on the screen can be read back (text is the terminal's default).
      const argv = ['-f', file, '--once', '--log-format', 'json'];
      const code = await runSync(argv, io, new EventEmitter(), {
        detect: detectedFake(runtime),
      });
      expect(code).toBe(0);
      expect(stdout).toContain('1/1 images present');
      // Live lines came and went: several figures, each drawn and later erased.
      const figures = new Set(
        stderr.match(/pulling r\.io\/shop\/big:1 {2}[\d.]+ [KM]iB \/ 3\.0 MiB/g),
      );
      expect(figures.size).toBeGreaterThanOrEqual(2);
      // What stays on the screen is the log, every line of it JSON, and no progress line.
      const shown = screen.shown;
      expect(shown.filter((l) => l.startsWith('pulling'))).toEqual([]);
      expect(shown.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(
        expect.arrayContaining(['read PrePull files', 'image state', 'stopped']),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('humanDuration', () => {
  it('says seconds, minutes and hours as people read them', () => {
    expect([0, 7_400, 65_000, 3_599_000, 7_380_000].map(humanDuration)).toEqual([
      '0s',
      '7s',
      '1m05s',
      '59m59s',
      '2h03m',
    ]);
  });
});
