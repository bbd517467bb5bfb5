import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { HELP, main, run, version } from './main.ts';
import { SYNC_USAGE } from '../config/sync.ts';
import { CONTROLLER_USAGE } from '../config/controller.ts';

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

  it('dispatches sync: its help, and usage errors with exit 2', async () => {
    let out = '';
    let err = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
    expect(await main(['sync', '--help'], io)).toBe(0);
    expect(out).toBe(SYNC_USAGE);
    expect(await main(['sync'], io)).toBe(2);
    expect(err).toContain('prepull sync: -f FILE|DIR is required');
    expect(err).toContain('ERR_USAGE');
  });

  it('dispatches controller: its help, and usage errors with exit 2', async () => {
    let out = '';
    let err = '';
    const io = { out: (t: string) => (out += t), err: (t: string) => (err += t) };
    expect(HELP).toContain('prepull controller --help');
    expect(await main(['controller', '--help'], io)).toBe(0);
    expect(out).toBe(CONTROLLER_USAGE);
    expect(await main(['controller', '--retry-period', 'soon'], io)).toBe(2);
    expect(err).toContain('prepull controller: --retry-period must be a number of seconds');
    expect(err).toContain('ERR_USAGE');
  });
});
