import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { pollUntil } from '../testing/poll.ts';
import { type LogFormat, createLogger, openLogger } from './logger.ts';
import type { ImageState } from '../image/report.ts';
import { Metrics } from './metrics.ts';

/** A stream that keeps what is written to it, as text lines. */
function lineSink(): { sink: Writable; lines: () => string[] } {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { sink, lines: () => text.split('\n').filter((line) => line !== '') };
}

/** What `openLogger` writes in `format` for the same events (three at or above its level). */
async function logged(format: LogFormat, color = false): Promise<string[]> {
  const { sink, lines } = lineSink();
  const log = (await openLogger('debug', { format, color, destination: sink })).child({
    component: 'cri',
  });
  log.info({ image: 'r.io/a:1', password: CANARY }, 'pulled');
  log.warn({ pull: { username: 'u', identityToken: CANARY } }, 'nested');
  log.debug({ request: { headers: { authorization: `Bearer ${CANARY}` } } }, 'deep');
  log.trace('below the level');
  // pino-pretty's stream hands lines on through a pipeline of its own: wait for all of them.
  return pollUntil('three log lines', () => lines().length >= 3 && lines(), {
    timeoutMs: 5000,
    intervalMs: 10,
  });
}

const CANARY = 'canary-Pa55-9f3e';

describe('logger', () => {
  it('redacts credentials wherever they sit, as JSON lines', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('debug', sink).child({ component: 'test' });
    const canary = 'canary-Pa55-9f3e';
    log.info({ image: 'r.io/a:1', password: canary }, 'top level');
    log.info({ auth: { username: 'u', password: canary }, credentials: { x: canary } }, 'nested');
    log.info({ request: { headers: { authorization: `Bearer ${canary}` } } }, 'deep');
    log.info({ pull: { auth: { identityToken: canary, registryToken: canary } } }, 'deeper');
    const text = lines.join('');
    expect(text).not.toContain(canary);
    expect(lines).toHaveLength(4);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'info',
      component: 'test',
      image: 'r.io/a:1',
      msg: 'top level',
      password: '[redacted]',
    });
  });
});

describe('log formats', () => {
  it('json: one JSON object per line, level as a word, secrets redacted', async () => {
    const lines = await logged('json');
    expect(lines).toHaveLength(3);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 'info',
      name: 'prepull',
      component: 'cri',
      image: 'r.io/a:1',
      password: '[redacted]',
      msg: 'pulled',
    });
    expect(lines.join('\n')).not.toContain(CANARY);
  });

  it("text: pino-pretty's lines — time, level, message, then the fields — redacted the same", async () => {
    const lines = await logged('text');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: pulled \{"component":"cri","image":"r\.io\/a:1","password":"\[redacted\]"\}$/,
    );
    expect(lines[1]).toMatch(/^\[[\d:.]+\] WARN: nested \{.*"identityToken":"\[redacted\]"/);
    expect(lines[2]).toMatch(/^\[[\d:.]+\] DEBUG: deep \{.*"authorization":"\[redacted\]"/);
    const text = lines.join('\n');
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain('{"level"');
    // No colours unless asked: the escape codes would garble a file or a pipe.
    expect(text).not.toContain('\u001b[');
  });

  it('text with colour: the level in colour, for a terminal', async () => {
    const [first] = await logged('text', true);
    expect(first).toContain('\u001b[');
    expect(first).toContain('INFO');
  });
});

describe('metrics', () => {
  it('counts images by state and exports per-image state within the limit', async () => {
    const metrics = new Metrics({ perImageLimit: 2 });
    metrics.setImageStates(
      new Map([
        ['r.io/a:1', 'Present'],
        ['r.io/b:1', 'Failed'],
      ]),
      1234,
    );
    let text = await metrics.render();
    expect(text).toContain('prepull_images_required 2');
    expect(text).toContain('prepull_images{state="Present"} 1');
    expect(text).toContain('prepull_images{state="Missing"} 0');
    expect(text).toContain('prepull_image_state{image="r.io/b:1",state="Failed"} 1');
    expect(text).toContain('prepull_images_held_bytes 1234');
    metrics.setImageStates(
      new Map([
        ['r.io/a:1', 'Present'],
        ['r.io/b:1', 'Present'],
        ['r.io/c:1', 'Missing'],
      ]),
      0,
    );
    text = await metrics.render();
    expect(text).not.toContain('prepull_image_state{');
    expect(text).toContain('prepull_images{state="Present"} 2');
  });

  /** The sample lines of `name` (no HELP or TYPE lines). */
  const samples = (text: string, name: string): string[] =>
    text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));

  it('leaves unknown values without a sample until they are known', async () => {
    const metrics = new Metrics();
    const unknown = [
      'prepull_imagefs_used_bytes',
      'prepull_imagefs_capacity_bytes',
      'prepull_last_sync_timestamp_seconds',
    ];
    let text = await metrics.render();
    for (const name of unknown) {
      expect(text).toContain(`# TYPE ${name} gauge`);
      expect(samples(text, name)).toEqual([]);
    }
    // A known 0 is a sample, unlike an unknown value.
    expect(samples(text, 'prepull_images_required')).toEqual(['prepull_images_required 0']);
    metrics.imageFsUsed.set(0);
    metrics.imageFsCapacity.set(1e12);
    metrics.lastSync.set(1_700_000_000);
    text = await metrics.render();
    expect(samples(text, 'prepull_imagefs_used_bytes')).toEqual(['prepull_imagefs_used_bytes 0']);
    expect(samples(text, 'prepull_imagefs_capacity_bytes')).toEqual([
      'prepull_imagefs_capacity_bytes 1000000000000',
    ]);
    expect(samples(text, 'prepull_last_sync_timestamp_seconds')).toEqual([
      'prepull_last_sync_timestamp_seconds 1700000000',
    ]);
  });

  it('says what runs in prepull_build_info, the runtime once detected', async () => {
    const metrics = new Metrics({ build: { version: '1.2.3', revision: 'abc', command: 'sync' } });
    const labels = `version="1.2.3",revision="abc",nodejs_version="${process.version}",command="sync"`;
    expect(samples(await metrics.render(), 'prepull_build_info')).toEqual([
      `prepull_build_info{${labels},runtime=""} 1`,
    ]);
    metrics.setRuntime('containerd');
    expect(samples(await metrics.render(), 'prepull_build_info')).toEqual([
      `prepull_build_info{${labels},runtime="containerd"} 1`,
    ]);
    // Without build labels (tests), no series.
    expect(samples(await new Metrics().render(), 'prepull_build_info')).toEqual([]);
  });

  it("exports Node's process metrics on every registry, without gauges named like counters", async () => {
    for (const metrics of [new Metrics(), new Metrics()]) {
      const text = await metrics.render();
      expect(samples(text, 'process_cpu_seconds_total')).toHaveLength(1);
      expect(samples(text, 'process_resident_memory_bytes')).toHaveLength(1);
      expect(samples(text, 'nodejs_heap_size_used_bytes')).toHaveLength(1);
      expect(text).toContain('# TYPE nodejs_eventloop_lag_p99_seconds gauge');
      expect(text).toContain('# TYPE nodejs_active_handles gauge');
      expect(text).not.toContain('nodejs_active_handles_total');
      expect(text).not.toContain('nodejs_active_requests_total');
      expect(text).not.toContain('nodejs_active_resources_total');
    }
  });

  it('rolls images up per PrePull, and removes the series of a PrePull that went away', async () => {
    const metrics = new Metrics();
    metrics.setPrePullStates(
      new Map([
        ['shop/web', ['Present', 'Failed', 'Present']],
        ['ops/tools', ['Pulling']],
      ]),
    );
    let text = await metrics.render();
    const web = text.split('\n').filter((l) => l.includes('namespace="shop",name="web"'));
    expect(web).toEqual([
      'prepull_prepull_images{namespace="shop",name="web",state="Present"} 2',
      'prepull_prepull_images{namespace="shop",name="web",state="Pulling"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Missing"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Stale"} 0',
      'prepull_prepull_images{namespace="shop",name="web",state="Failed"} 1',
    ]);
    expect(text).toContain(
      'prepull_prepull_images{namespace="ops",name="tools",state="Pulling"} 1',
    );
    expect(samples(text, 'prepull_prepulls_over_limit')).toEqual(['prepull_prepulls_over_limit 0']);
    metrics.setPrePullStates(new Map([['ops/tools', ['Present']]]));
    text = await metrics.render();
    expect(text).not.toContain('name="web"');
    expect(samples(text, 'prepull_prepull_images')).toHaveLength(5);
  });

  it('exports at most 200 PrePulls, keeping those with the most images not Present', async () => {
    const metrics = new Metrics();
    expect(metrics.perPrePullLimit).toBe(200);
    const prePulls = new Map<string, ImageState[]>();
    for (let i = 0; i < 205; i++) prePulls.set(`ns/p${String(i).padStart(3, '0')}`, ['Present']);
    prePulls.set('ns/p150', ['Present', 'Failed']);
    prePulls.set('ns/p204', ['Missing', 'Failed', 'Present']);
    metrics.setPrePullStates(prePulls);
    const text = await metrics.render();
    const exported = new Set(
      samples(text, 'prepull_prepull_images').map((l) => /name="([^"]+)"/.exec(l)?.[1]),
    );
    expect(exported.size).toBe(200);
    // The two with trouble first, then the others in name order: p000 … p197, less p150.
    expect(exported.has('p204')).toBe(true);
    expect(exported.has('p150')).toBe(true);
    expect(exported.has('p198')).toBe(true);
    expect(exported.has('p199')).toBe(false);
    expect(exported.has('p203')).toBe(false);
    expect(samples(text, 'prepull_prepulls_over_limit')).toEqual(['prepull_prepulls_over_limit 5']);
    // Within the limit again: every PrePull, nothing left out.
    metrics.setPrePullStates(new Map([['a/b', ['Present']]]));
    const after = await metrics.render();
    expect(samples(after, 'prepull_prepull_images')).toHaveLength(5);
    expect(samples(after, 'prepull_prepulls_over_limit')).toEqual([
      'prepull_prepulls_over_limit 0',
    ]);
  });

  it('keeps each engine on its own registry', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.pulls.inc({ result: 'success', code: '' });
    expect(await a.render()).toContain('prepull_pulls_total{result="success",code=""} 1');
    expect(await b.render()).not.toContain('prepull_pulls_total{');
  });
});
