import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from './logger.ts';
import { Metrics } from './metrics.ts';

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
