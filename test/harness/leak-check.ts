// CI's proof that the harness leaves nothing behind: after a passing run (the integration tests
// that ran before this), after a failing run, and after a run interrupted with SIGINT — each
// time no process the harness started remains, nothing it mounted stays mounted, and no cgroup
// or directory of it is left. Exits 1 listing whatever remains.
// Usage: node test/harness/leak-check.ts [check|fail|sigint|all]
// With PREPULL_HARNESS_RUN=<tag>, only this run's harnesses count (see runPrefix in cleanup.ts).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeLeftovers, findLeftovers, isClean, runPrefix } from './cleanup.ts';

const say = (line: string): void => {
  process.stdout.write(`[leak-check] ${line}\n`);
};

/** Polls until nothing of any harness remains, or `withinMs` passes; returns the last finding. */
async function settle(withinMs: number): Promise<string> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const leftovers = findLeftovers(runPrefix());
    if (isClean(leftovers)) return '';
    if (Date.now() > deadline) return describeLeftovers(leftovers);
    await sleep(250);
  }
}

/** Runs the lifecycle fixture; its output (a deliberate failure, say) goes to `logFile`. */
function jestLifecycle(
  scenario: string,
  readyFile: string,
  logFile: string,
): ReturnType<typeof spawn> {
  const fd = openSync(logFile, 'w');
  const child = spawn(
    process.execPath,
    [
      '--experimental-vm-modules',
      'node_modules/jest/bin/jest.js',
      '--selectProjects',
      'lifecycle',
      '--runInBand',
    ],
    {
      // Its own process group, so SIGINT can go to the whole group as a terminal's Ctrl-C does.
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, PREPULL_LIFECYCLE: scenario, PREPULL_LIFECYCLE_READY: readyFile },
    },
  );
  closeSync(fd);
  return child;
}

function showLog(logFile: string): void {
  process.stdout.write(readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n'));
}

function exitOf(
  child: ReturnType<typeof spawn>,
): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      resolve({ code, signal });
    }),
  );
}

async function scenarioCheck(label: string): Promise<boolean> {
  const found = await settle(15_000);
  if (found === '') {
    say(`${label}: clean (no harness process, mount, cgroup or directory remains)`);
    return true;
  }
  say(`${label}: LEFT BEHIND:\n${found}`);
  return false;
}

async function scenarioFail(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'leak-check-'));
  const child = jestLifecycle('fail', join(dir, 'ready'), join(dir, 'jest.log'));
  const exit = await exitOf(child);
  const started = existsSync(join(dir, 'ready'));
  if (!started || exit.code === 0) {
    say(`failing run: the fixture did not run as planned (started=${started}, exit ${exit.code})`);
    showLog(join(dir, 'jest.log'));
    rmSync(dir, { recursive: true, force: true });
    return false;
  }
  rmSync(dir, { recursive: true, force: true });
  say(`failing run exited ${exit.code} as intended`);
  return scenarioCheck('after a failing run');
}

async function scenarioSigint(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'leak-check-'));
  const ready = join(dir, 'ready');
  const child = jestLifecycle('hang', ready, join(dir, 'jest.log'));
  const exited = exitOf(child);
  const deadline = Date.now() + 120_000;
  while (!existsSync(ready) && Date.now() < deadline) await sleep(200);
  if (child.pid === undefined || Date.now() >= deadline) {
    say('interrupted run: the fixture never became ready');
    showLog(join(dir, 'jest.log'));
    rmSync(dir, { recursive: true, force: true });
    return false;
  }
  rmSync(dir, { recursive: true, force: true });
  const before = findLeftovers(runPrefix());
  say(
    `interrupting a run holding ${before.processes.length} harness processes and ${before.mounts.length} mounts`,
  );
  if (before.mounts.length === 0 || before.processes.length === 0) {
    say('interrupted run: expected running containers and mounts before the interrupt');
    return false;
  }
  process.kill(-child.pid, 'SIGINT');
  const exit = await exited;
  say(`interrupted run ended (code ${exit.code}, signal ${exit.signal})`);
  return scenarioCheck('after SIGINT');
}

const which = process.argv[2] ?? 'all';
const results: boolean[] = [];
if (which === 'check' || which === 'all') results.push(await scenarioCheck('after the test run'));
if (which === 'fail' || which === 'all') results.push(await scenarioFail());
if (which === 'sigint' || which === 'all') results.push(await scenarioSigint());
process.exit(results.every(Boolean) ? 0 : 1);
