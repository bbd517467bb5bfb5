import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { HELP, run, version } from './main.ts';

function capture(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = run(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('prepull command line', () => {
  it('prints the package version for --version and -V', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(version()).toBe(pkg.version);
    expect(capture(['--version'])).toEqual({ code: 0, out: `${pkg.version}\n`, err: '' });
    expect(capture(['-V']).out).toBe(`${pkg.version}\n`);
  });

  it('prints help with exit 0 when asked, and exit 2 when no command is given', () => {
    expect(capture(['--help'])).toEqual({ code: 0, out: HELP, err: '' });
    expect(capture([]).code).toBe(2);
  });

  it('rejects an unknown command with a coded usage error naming it', () => {
    const result = capture(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.err).toContain('unknown command frobnicate');
    expect(result.err).toContain('ERR_USAGE');
  });
});
