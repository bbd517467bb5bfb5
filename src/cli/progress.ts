// `prepull sync`'s pull progress for people. On a terminal: one line per pulling image (bytes done
// of the total, rate, time left), redrawn in place below the log and erased when its pull ends;
// log lines go through print() so they land above it. Elsewhere: a plain line per pulling image
// every PLAIN_INTERVAL_MS. The engine publishes progress at most once a second (reconcile/
// report.ts); tick() redraws in between, so a stalled pull's rate falls as time passes.
import type { Clock } from '../clock.ts';
import type { ImageProgress, ImageReport } from '../image/report.ts';
import { humanBytes, shortRef } from './output.ts';

/** Without a terminal: a line per pulling image this often, the first once it has run this long. */
export const PLAIN_INTERVAL_MS = 10_000;
/** The rate is measured over this much of the recent past (and shown once this much has passed). */
const RATE_WINDOW_MS = 5000;
const MIN_RATE_SPAN_MS = 1000;
/** Up one line and erase it: undoes one drawn line. */
const ERASE_LINE_ABOVE = '\x1b[1A\x1b[2K';

export interface ProgressViewOptions {
  clock: Clock;
  /** Writes to the stream the view shows on. */
  write: (text: string) => void;
  /** Set when that stream is a terminal: its width now. Without it, plain periodic lines. */
  terminal?: { columns: () => number | undefined } | undefined;
}

interface Sample {
  at: number;
  bytes: number;
}

/** One pulling image, as the view follows it. */
interface Track {
  /** As written in the PrePull, a digest shortened. */
  name: string;
  /** When the view first saw it Pulling (its clock). */
  since: number;
  progress?: ImageProgress;
  /** Recent figures, oldest first: the rate's window (one sample older than it, as its start). */
  samples: Sample[];
  /** When its last plain line was written (or `since`). */
  printedAt: number;
}

export class ProgressView {
  readonly #clock: Clock;
  readonly #write: (text: string) => void;
  readonly #terminal: ProgressViewOptions['terminal'];
  /** By canonical reference. */
  readonly #tracks = new Map<string, Track>();
  /** Lines drawn below the log (terminal only). */
  #drawn = 0;

  constructor(options: ProgressViewOptions) {
    this.#clock = options.clock;
    this.#write = options.write;
    this.#terminal = options.terminal;
  }

  /** The engine's reports (each publication): follows the Pulling images, forgets the others. */
  update(reports: readonly ImageReport[]): void {
    const now = this.#clock.now();
    const pulling = new Set<string>();
    for (const report of reports) {
      if (report.state !== 'Pulling') continue;
      pulling.add(report.image);
      let track = this.#tracks.get(report.image);
      if (track === undefined) {
        track = { name: shortRef(report.written), since: now, samples: [], printedAt: now };
        this.#tracks.set(report.image, track);
      }
      if (report.progress !== undefined) sample(track, report.progress, now);
    }
    for (const image of this.#tracks.keys()) if (!pulling.has(image)) this.#tracks.delete(image);
    if (this.#terminal !== undefined) this.#redraw('');
  }

  /** Time passed (about once a second): redraws the terminal, or writes the plain lines due. */
  tick(): void {
    if (this.#terminal !== undefined) {
      if (this.#tracks.size > 0 || this.#drawn > 0) this.#redraw('');
      return;
    }
    const now = this.#clock.now();
    let text = '';
    for (const track of this.#tracks.values()) {
      if (now - track.printedAt < PLAIN_INTERVAL_MS) continue;
      track.printedAt = now;
      text += `${progressLine(track, now)}\n`;
    }
    if (text !== '') this.#write(text);
  }

  /** Writes whole lines (a log line) above the live lines, which are drawn again below them. */
  print(text: string): void {
    if (this.#terminal === undefined) this.#write(text);
    else this.#redraw(text);
  }

  /** Erases the live lines (before the result is printed); the next update draws them again. */
  clear(): void {
    if (this.#drawn === 0) return;
    this.#write(ERASE_LINE_ABOVE.repeat(this.#drawn));
    this.#drawn = 0;
  }

  /** Stops following: erases the live lines and forgets the pulls (log lines still pass). */
  close(): void {
    this.#tracks.clear();
    this.clear();
  }

  #redraw(above: string): void {
    const now = this.#clock.now();
    const columns = this.#terminal?.columns();
    let text = ERASE_LINE_ABOVE.repeat(this.#drawn) + above;
    for (const track of this.#tracks.values()) text += `${fit(track, now, columns)}\n`;
    this.#drawn = this.#tracks.size;
    this.#write(text);
  }
}

function sample(track: Track, progress: ImageProgress, now: number): void {
  track.progress = progress;
  const last = track.samples[track.samples.length - 1];
  if (last?.bytes !== progress.bytes) track.samples.push({ at: now, bytes: progress.bytes });
  // Keep one sample from before the window: the rate spans the whole window.
  while (track.samples.length > 1 && (track.samples[1]?.at ?? now) <= now - RATE_WINDOW_MS) {
    track.samples.shift();
  }
}

/** Bytes per second over the window up to `now`; undefined until the figures span a second. */
function rateOf(track: Track, now: number): number | undefined {
  if (track.progress === undefined) return undefined;
  // The window starts at the last figure before it (or at the first figure there is).
  let start = track.samples[0];
  for (const s of track.samples) if (s.at <= now - RATE_WINDOW_MS) start = s;
  if (start === undefined || now - start.at < MIN_RATE_SPAN_MS) return undefined;
  return ((track.progress.bytes - start.bytes) * 1000) / (now - start.at);
}

/** 7s, 1m05s, 2h03m. */
export function humanDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** `pulling NAME  120.5 MiB / 300.0 MiB  25.1 MiB/s  7s left` (what is known of it). */
function progressLine(track: Track, now: number, name = track.name): string {
  const parts = [`pulling ${name}`];
  const progress = track.progress;
  if (progress === undefined) {
    parts.push(`${humanDuration(now - track.since)} so far`);
    return parts.join('  ');
  }
  const { bytes, totalBytes } = progress;
  parts.push(
    totalBytes === undefined
      ? humanBytes(bytes)
      : `${humanBytes(bytes)} / ${humanBytes(totalBytes)}`,
  );
  const rate = rateOf(track, now);
  if (rate !== undefined) parts.push(`${humanBytes(Math.round(rate))}/s`);
  if (rate !== undefined && rate > 0 && totalBytes !== undefined && totalBytes >= bytes) {
    parts.push(`${humanDuration(((totalBytes - bytes) * 1000) / rate)} left`);
  }
  return parts.join('  ');
}

/** The line within `columns` (a wrapped line would break the redraw): the name gives way first. */
function fit(track: Track, now: number, columns: number | undefined): string {
  const line = progressLine(track, now);
  if (columns === undefined || columns <= 0 || line.length < columns) return line;
  const keep = track.name.length - (line.length - columns + 2);
  if (keep >= 8) return progressLine(track, now, `…${track.name.slice(-keep)}`);
  return line.slice(0, columns - 1);
}
