// A root logger for tests that keeps every line it writes, parsed, and a plain GET of a
// command's health endpoints. Test support beside the code it serves (like src/testing/poll.ts); never bundled.
import { Writable } from 'node:stream';
import { type Logger, createLogger } from '../logger.ts';

/** A debug-level JSON logger whose lines land, parsed, in `lines`. */
export function jsonLogSink(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const raw of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(raw) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

/** GET `base` + `path`: the status and the body as text. */
export async function getText(
  base: string,
  path: string,
): Promise<{ status: number; text: string }> {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, text: await response.text() };
}
