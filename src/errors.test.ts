import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, PrepullError, isPrepullError } from './errors.ts';

describe('error catalogue', () => {
  it('documents every code in docs/errors.md', () => {
    const doc = readFileSync('docs/errors.md', 'utf8');
    const missing = Object.keys(ERROR_CODES).filter((code) => !doc.includes(`\`${code}\``));
    expect(missing).toEqual([]);
  });

  it('documents each code with the same retryability as the catalogue', () => {
    const doc = readFileSync('docs/errors.md', 'utf8');
    for (const [code, { retryable }] of Object.entries(ERROR_CODES)) {
      const section = doc.split(`## \`${code}\``)[1]?.split('\n## ')[0] ?? '';
      expect({
        code,
        documented: section.includes(`Retryable: ${retryable ? 'yes' : 'no'}.`),
      }).toEqual({
        code,
        documented: true,
      });
    }
  });

  it('carries code, retryability and cause', () => {
    const cause = new Error('root');
    const error = new PrepullError('ERR_USAGE', 'bad flag', { cause });
    expect(error.code).toBe('ERR_USAGE');
    expect(error.retryable).toBe(false);
    expect(error.cause).toBe(cause);
    expect(isPrepullError(error, 'ERR_USAGE')).toBe(true);
    expect(isPrepullError(new Error('x'))).toBe(false);
  });
});
