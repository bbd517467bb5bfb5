// The root logger's bounds: a long string in a line's message or fields is cut (issue 21).
import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { MAX_LOG_STRING, createLogger } from './logger.ts';

function capture(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const raw of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(raw) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('info', sink), lines };
}

describe('createLogger', () => {
  it('cuts long strings in the message and top-level fields, and leaves short ones alone', async () => {
    const { log, lines } = capture();
    const long = 'x'.repeat(1_000_000);
    log.error({ image: long, code: 'ERR_PREPULL_INVALID' }, `bad: ${long}`);
    log.info({ image: 'a:1' }, 'short');
    await new Promise((resolve) => setImmediate(resolve));
    const [first, second] = lines;
    expect(first?.code).toBe('ERR_PREPULL_INVALID');
    expect(first?.image).toBe(
      `${'x'.repeat(MAX_LOG_STRING)}… (${1_000_000 - MAX_LOG_STRING} more characters)`,
    );
    expect(first?.msg).toBe(
      `bad: ${'x'.repeat(MAX_LOG_STRING - 5)}… (${1_000_005 - MAX_LOG_STRING} more characters)`,
    );
    expect(second).toMatchObject({ image: 'a:1', msg: 'short' });
  });
});
