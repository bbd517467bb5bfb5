import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { pollUntil } from '../testing/poll.ts';
import { type LogFormat, createLogger, openLogger } from './logger.ts';
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

  it('keeps each engine on its own registry', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.pulls.inc({ result: 'success', code: '' });
    expect(await a.render()).toContain('prepull_pulls_total{result="success",code=""} 1');
    expect(await b.render()).not.toContain('prepull_pulls_total{');
  });
});
