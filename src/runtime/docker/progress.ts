// Reads Docker Engine's pull stream: newline-delimited JSON messages, one per layer step, with
// download byte counts in `progressDetail`. Turns them into prepull's progress figure and finds
// the error a failed pull reports in-stream (Docker answers 200 and then fails mid-pull).

import type { PullProgress } from '../types.ts';

export interface PullMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

interface LayerState {
  current: number;
  total: number | undefined;
  complete: boolean;
}

/** Adds up download bytes per layer. Extraction progress is not download and is ignored. */
export class DockerPullTally {
  readonly #layers = new Map<string, LayerState>();
  #reported = 0;
  /** Docker says "Status: …" (or "Digest: …") only when the pull went through. */
  finished = false;

  /** Takes one message; returns the new figure when the bytes moved, else undefined. */
  observe(message: PullMessage): PullProgress | undefined {
    const status = message.status ?? '';
    if (status.startsWith('Status:') || status.startsWith('Digest:')) this.finished = true;
    const id = message.id;
    if (id === undefined || status.startsWith('Pulling from')) return undefined;
    if (status === 'Already exists') {
      this.#layers.delete(id); // nothing to download
      return this.#figure();
    }
    const layer = this.#layers.get(id) ?? { current: 0, total: undefined, complete: false };
    this.#layers.set(id, layer);
    applyStep(layer, status, message.progressDetail);
    return this.#figure();
  }

  #figure(): PullProgress | undefined {
    let done = 0;
    let total = 0;
    let totalKnown = true;
    for (const layer of this.#layers.values()) {
      done += layer.current;
      if (layer.total !== undefined) total += layer.total;
      else if (layer.complete) total += layer.current;
      else totalKnown = false;
    }
    if (done <= this.#reported) return undefined;
    this.#reported = done;
    return totalKnown ? { bytesDone: done, bytesTotal: total } : { bytesDone: done };
  }
}

function applyStep(layer: LayerState, status: string, detail: PullMessage['progressDetail']): void {
  if (status === 'Downloading') {
    const current = detail?.current ?? 0;
    const total = detail?.total;
    // Docker says "Downloading" at the layer's full size both when it has read the whole layer
    // and when the connection dropped (its last word before "Retrying in"): only the steps
    // after it ("Verifying Checksum", "Download complete") tell, so that one is not counted.
    // Counting it told the stall watch every byte had come, and it stopped watching.
    if (total !== undefined && current >= total) return;
    // A retried download asks for the rest with a Range request and counts from 0 against the
    // rest's size: put those bytes back where they fall in the whole layer.
    const resumedAt =
      layer.total !== undefined && total !== undefined && total < layer.total
        ? layer.total - total
        : 0;
    layer.current = Math.max(layer.current, resumedAt + current);
    layer.total ??= total;
  } else if (COMPLETE_STEPS.has(status)) {
    layer.complete = true;
    layer.current = Math.max(layer.current, layer.total ?? 0);
  }
}

const COMPLETE_STEPS = new Set(['Verifying Checksum', 'Download complete', 'Pull complete']);

/** The error text of an in-stream failure message, if it is one. */
export function streamError(message: PullMessage): string | undefined {
  return message.errorDetail?.message ?? message.error;
}

/** Splits a byte stream into JSON lines; bad lines are reported, not thrown. */
export class JsonLines<T> {
  #buffer = '';
  readonly #onLine: (value: T) => void;

  constructor(onLine: (value: T) => void) {
    this.#onLine = onLine;
  }

  push(chunk: Buffer | string): void {
    this.#buffer += chunk.toString();
    for (let at = this.#buffer.indexOf('\n'); at !== -1; at = this.#buffer.indexOf('\n')) {
      const line = this.#buffer.slice(0, at).trim();
      this.#buffer = this.#buffer.slice(at + 1);
      if (line === '') continue;
      try {
        this.#onLine(JSON.parse(line) as T);
      } catch {
        // Not JSON: Docker does not send such lines; skip rather than fail a working pull.
      }
    }
  }
}
