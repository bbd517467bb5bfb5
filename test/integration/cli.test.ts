// The command line as people and machines meet it (issue 19, items 6 and 7), through the built
// CLI: `--log-format text` prints pino-pretty's lines and the default on a pipe stays JSON; the
// README, package.json's `engines` and the launcher name the same Node; and `npx prepull`, run as
// the README says, prints no EBADENGINE warning.
import { beforeAll, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type HarnessInfo, sharedHarness } from '../harness/index.ts';
import { describeIntegration } from '../harness/jest.ts';
import { assertBuildFresh, runSync, writePrePull } from '../harness/sync-cli.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** "22.19" → [22, 19, 0]. */
function version(text: string): number[] {
  const [major = 0, minor = 0, patch = 0] = text.replace(/^v/, '').split('.').map(Number);
  return [major, minor, patch];
}

function atLeast(have: string, least: string): boolean {
  const [a, b] = [version(have), version(least)];
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return true;
}

/** The first executable called `name` on the system's PATH, never node_modules/.bin. */
function onSystemPath(name: string): string | undefined {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '' && !dir.includes('node_modules'))
    .map((dir) => join(dir, name))
    .find((path) => existsSync(path));
}

function run(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: ROOT, env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      if (code === -1) reject(error ?? new Error(`${file} failed to start`));
      else resolve({ code, stdout, stderr });
    });
  });
}

describeIntegration('the command line (built CLI)', () => {
  let h: HarnessInfo;
  let prePull: string;

  beforeAll(() => {
    // The shipped bundle, not src/: pino-pretty must load from its own chunk of dist/.
    expect(existsSync(join(ROOT, 'dist/cli/main.js'))).toBe(true);
    assertBuildFresh();
    h = sharedHarness();
    const dir = mkdtempSync(join(h.workDir, 'cli-'));
    // The sandbox image is on every harness containerd already: a run with nothing to pull.
    prePull = writePrePull(dir, 'sandbox', [h.containerd!.sandboxImage], { verify: 'None' });
  });

  const flags = (): string[] => [
    '-f',
    prePull,
    '--once',
    '--runtime-endpoint',
    `unix://${h.containerd!.socket}`,
    '--node-name',
    'cli-test',
  ];

  it("--log-format text prints pino-pretty's lines: time, level, message, fields", async () => {
    const exit = await runSync([...flags(), '--log-format', 'text']);
    expect(exit.code).toBe(0);
    expect(exit.logs).toEqual([]);
    const line = (msg: string): string | undefined =>
      exit.otherStderr.find((l) => l.includes(`INFO: ${msg}`));
    expect(line('read PrePull files')).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: read PrePull files \{"prePulls":1,"invalid":0\}$/,
    );
    expect(line('image state')).toMatch(
      new RegExp(`^\\[[\\d:.]+\\] INFO: image state \\{.*"image":"${h.containerd!.sandboxImage}"`),
    );
    // stderr is a pipe here: no colour codes.
    expect(exit.stderr).not.toContain('\u001b[');
  });

  it('logs JSON lines by default when stderr is not a terminal (a Pod, a pipe)', async () => {
    const exit = await runSync(flags());
    expect(exit.code).toBe(0);
    expect(exit.otherStderr).toEqual([]);
    expect(exit.logs.map((l) => l.msg)).toContain('read PrePull files');
    expect(exit.logs.every((l) => l.level !== '' && l.name === 'prepull')).toBe(true);
  });

  it('the README, package.json engines and the launcher ask for the same Node', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const stated = /Node\.js ≥ (\d+(?:\.\d+)*)/.exec(readme)?.[1];
    expect(stated).toBeDefined();
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    expect(pkg.engines.node).toBe(`>=${stated}`);
    expect(readFileSync(join(ROOT, 'bin/prepull.js'), 'utf8')).toContain(
      `Node.js >= ${stated} is required`,
    );
  });

  it('`npx prepull` prints no EBADENGINE warning on any Node here that the README accepts', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const least = /Node\.js ≥ (\d+(?:\.\d+)*)/.exec(readme)?.[1] ?? '0';
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const npx = onSystemPath('npx');
    if (npx === undefined) throw new Error('npx is not on the system PATH; the README needs npm');
    // This Node (24, as `npm ci` installs it, which the README says to fetch where the system's
    // is older) and the system's own Node, when the README lets a user keep it.
    const nodes = [process.execPath, onSystemPath('node')].filter(
      (node): node is string => node !== undefined,
    );
    const accepted: string[] = [];
    for (const node of nodes) {
      const { stdout } = await run(node, ['--version'], process.env);
      if (atLeast(stdout.trim(), least)) accepted.push(node);
    }
    expect(accepted).toContain(process.execPath);
    for (const node of accepted) {
      const system = (process.env.PATH ?? '')
        .split(delimiter)
        .filter((dir) => !dir.includes('node_modules'));
      const PATH = [dirname(node), ...system].join(delimiter);
      // A user's first `npx prepull` in a checkout: npx installs the checkout into its cache
      // (and checks its engines there, where EBADENGINE comes from); later runs reuse that
      // cache and say nothing, so each run gets a fresh one. Its scripts are left out: the
      // `prepare` build would rebuild dist/ under the other tests, and is not what warns.
      const env = {
        ...process.env,
        PATH,
        npm_config_cache: mkdtempSync(join(h.workDir, 'npm-cache-')),
        npm_config_ignore_scripts: 'true',
        npm_config_update_notifier: 'false',
      };
      const result = await run(npx, ['prepull', '--version'], env);
      expect({ node, ...result }).toMatchObject({ node, code: 0, stdout: `${pkg.version}\n` });
      expect(result.stderr).not.toContain('EBADENGINE');
    }
  });
});
