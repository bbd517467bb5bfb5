// The root logger's bounds: a long string in a line's message or fields is cut (issue 21).
import { describe, expect, it } from '@jest/globals';
import { MAX_LOG_STRING } from './logger.ts';
import { jsonLogSink } from './testing/log-sink.ts';

describe('createLogger', () => {
  it('cuts long strings in the message and top-level fields, and leaves short ones alone', async () => {
    const { log, lines } = jsonLogSink();
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
