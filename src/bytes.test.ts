import { describe, expect, it } from '@jest/globals';
import { formatBytes } from './bytes.ts';

describe('formatBytes', () => {
  it('writes bytes for people, two decimals unless told', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(10 * 2 ** 30)).toBe('10.00 GiB');
    expect(formatBytes(1536, 1)).toBe('1.5 KiB');
    expect(formatBytes(3 * 2 ** 50, 1)).toBe('3.0 PiB');
  });
});
