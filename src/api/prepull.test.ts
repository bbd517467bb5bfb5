import { describe, expect, it } from '@jest/globals';
import {
  DEFAULTS,
  scheduleProblem,
  selectsNode,
  timeZoneProblem,
  validatePrePull,
} from './prepull.ts';

function base(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'prepull.dev/v1alpha1',
    kind: 'PrePull',
    metadata: { name: 'shop', namespace: 'shop', ...metadata },
    spec: { images: [{ image: 'registry.internal:5000/shop/web:1.4.2' }], ...spec },
  };
}

describe('validatePrePull', () => {
  it('accepts a minimal object and fills in the defaults', () => {
    const { prePull, issues } = validatePrePull(base());
    expect(issues).toEqual([]);
    expect(prePull?.spec).toEqual({
      images: [{ image: 'registry.internal:5000/shop/web:1.4.2' }],
      nodeSelector: {},
      imagePullSecrets: [],
      pullPolicy: DEFAULTS.pullPolicy,
      verify: DEFAULTS.verify,
      pin: true,
      timeoutSeconds: 1800,
      backoffLimit: 6,
      cleanup: 'Unpin',
      scheduleJitterSeconds: 300,
    });
  });

  it('keeps every given field', () => {
    const spec = {
      images: [{ image: 'a:1' }, { image: 'b@sha256:' + 'a'.repeat(64) }],
      nodeSelector: { 'node-role.kubernetes.io/worker': '' },
      imagePullSecrets: [{ name: 'regcred' }],
      pullPolicy: 'Always',
      verify: 'None',
      schedule: '*/30 * * * *',
      timeZone: 'Europe/Berlin',
      scheduleJitterSeconds: 0,
      pin: false,
      timeoutSeconds: 60,
      backoffLimit: 0,
      rollout: { maxConcurrentNodes: '10%', paused: true },
      nodeLabel: 'shop-images',
      cleanup: 'Remove',
    };
    expect(validatePrePull(base(spec)).prePull?.spec).toEqual(spec);
  });

  it('defaults the namespace for objects read from files', () => {
    const { prePull } = validatePrePull(base({}, { namespace: undefined }), 'default');
    expect(prePull?.metadata.namespace).toBe('default');
  });

  // Each bad input names the field and says what it must be.
  const cases: [string, unknown, string, RegExp][] = [
    [
      'wrong apiVersion',
      { ...(base() as object), apiVersion: 'v1' },
      'apiVersion',
      /must be prepull\.dev\/v1alpha1, got "v1"/,
    ],
    ['missing name', base({}, { name: undefined }), 'metadata.name', /required/],
    ['uppercase name', base({}, { name: 'Shop' }), 'metadata.name', /"Shop" is not a valid name/],
    ['dotted namespace', base({}, { namespace: 'a.b' }), 'metadata.namespace', /DNS label/],
    ['no images', base({ images: [] }), 'spec.images', /1 to 256/],
    ['images not a list', base({ images: 'nginx' }), 'spec.images', /list of 1 to 256/],
    [
      'too many images',
      base({ images: Array.from({ length: 257 }, (_, i) => ({ image: `i:${i}` })) }),
      'spec.images',
      /257 entries; at most 256/,
    ],
    [
      'image entry not an object',
      base({ images: ['nginx'] }),
      'spec.images[0]',
      /must be an object like/,
    ],
    ['image not a string', base({ images: [{ image: 42 }] }), 'spec.images[0].image', /got 42/],
    [
      'unknown field in an entry',
      base({ images: [{ image: 'a', tag: 'b' }] }),
      'spec.images[0].tag',
      /unknown field/,
    ],
    [
      'bad pullPolicy',
      base({ pullPolicy: 'Sometimes' }),
      'spec.pullPolicy',
      /IfNotPresent, Always, got "Sometimes"/,
    ],
    ['bad verify', base({ verify: true }), 'spec.verify', /Registry, None, got true/],
    [
      'bad schedule',
      base({ schedule: '61 * * * *' }),
      'spec.schedule',
      /not a valid cron schedule.*minute/,
    ],
    ['schedule not a string', base({ schedule: 5 }), 'spec.schedule', /cron expression string/],
    [
      'an unknown time zone',
      base({ schedule: '0 2 * * *', timeZone: 'Mars/Olympus' }),
      'spec.timeZone',
      /^"Mars\/Olympus" is not a time zone the tz database knows \(an IANA time zone name such as Europe\/Berlin or UTC; this prepull's Node has tz data 20\d\d[a-z]\)$/,
    ],
    [
      'a time zone in the wrong case',
      base({ timeZone: 'europe/berlin' }),
      'spec.timeZone',
      /^"europe\/berlin": time zone names are case-sensitive; did you mean "Europe\/Berlin"\?$/,
    ],
    ['time zone Local', base({ timeZone: 'Local' }), 'spec.timeZone', /"Local" is not allowed/],
    ['time zone local', base({ timeZone: 'local' }), 'spec.timeZone', /"local" is not allowed/],
    ['an empty time zone', base({ timeZone: '' }), 'spec.timeZone', /or absent for the local zone/],
    [
      'a UTC offset for a time zone',
      base({ timeZone: '+01:00' }),
      'spec.timeZone',
      /"\+01:00" is not an IANA time zone name such as Europe\/Berlin or UTC: parts of at most 14/,
    ],
    ['a ".." time zone part', base({ timeZone: 'Europe/../UTC' }), 'spec.timeZone', /parts of/],
    ['a time zone part of 15', base({ timeZone: 'Europe/Abcdefghijklmno' }), 'spec.timeZone', /14/],
    ['a time zone part after "-"', base({ timeZone: '-UTC' }), 'spec.timeZone', /parts of/],
    ['a time zone of 65', base({ timeZone: 'A/'.repeat(32) + 'B' }), 'spec.timeZone', /parts of/],
    ['time zone a number', base({ timeZone: 1 }), 'spec.timeZone', /name string.*got 1$/],
    [
      'jitter over an hour',
      base({ scheduleJitterSeconds: 3601 }),
      'spec.scheduleJitterSeconds',
      /whole number from 0 to 3600, got 3601/,
    ],
    [
      'negative jitter',
      base({ scheduleJitterSeconds: -1 }),
      'spec.scheduleJitterSeconds',
      /0 to 3600/,
    ],
    [
      'jitter as a string',
      base({ scheduleJitterSeconds: '5m' }),
      'spec.scheduleJitterSeconds',
      /whole number/,
    ],
    ['pin not boolean', base({ pin: 'yes' }), 'spec.pin', /true or false/],
    ['timeout zero', base({ timeoutSeconds: 0 }), 'spec.timeoutSeconds', /1 to 86400, got 0/],
    ['timeout fractional', base({ timeoutSeconds: 1.5 }), 'spec.timeoutSeconds', /whole number/],
    ['negative backoffLimit', base({ backoffLimit: -1 }), 'spec.backoffLimit', /0 to 100/],
    [
      'selector value not a string',
      base({ nodeSelector: { zone: 5 } }),
      'spec.nodeSelector["zone"]',
      /quote it/,
    ],
    [
      'selector key invalid',
      base({ nodeSelector: { 'bad key': 'x' } }),
      'spec.nodeSelector["bad key"]',
      /invalid label key/,
    ],
    [
      'selector value invalid',
      base({ nodeSelector: { zone: '-x' } }),
      'spec.nodeSelector["zone"]',
      /invalid label value/,
    ],
    [
      'secret without name',
      base({ imagePullSecrets: [{}] }),
      'spec.imagePullSecrets[0].name',
      /required/,
    ],
    [
      'secrets not a list',
      base({ imagePullSecrets: 'regcred' }),
      'spec.imagePullSecrets',
      /must be a list/,
    ],
    [
      'typo in a spec field',
      base({ pullpolicy: 'Always' }),
      'spec.pullpolicy',
      /unknown field; known fields are/,
    ],
    [
      'no spec',
      { apiVersion: 'prepull.dev/v1alpha1', kind: 'PrePull', metadata: { name: 'x' } },
      'spec',
      /required/,
    ],
    [
      'maxConcurrentNodes zero',
      base({ rollout: { maxConcurrentNodes: 0 } }),
      'spec.rollout.maxConcurrentNodes',
      /whole number of nodes from 1 to 5000/,
    ],
    [
      'maxConcurrentNodes 150%',
      base({ rollout: { maxConcurrentNodes: '150%' } }),
      'spec.rollout.maxConcurrentNodes',
      /percent from "1%" to "100%"/,
    ],
    [
      'maxConcurrentNodes "ten"',
      base({ rollout: { maxConcurrentNodes: 'ten' } }),
      'spec.rollout.maxConcurrentNodes',
      /percent/,
    ],
    ['paused "yes"', base({ rollout: { paused: 'yes' } }), 'spec.rollout.paused', /true or false/],
    ['unknown rollout field', base({ rollout: { max: 3 } }), 'spec.rollout.max', /unknown field/],
    [
      'nodeLabel with a slash',
      base({ nodeLabel: 'a/b' }),
      'spec.nodeLabel',
      /name part of a label key/,
    ],
    ['nodeLabel too long', base({ nodeLabel: 'a'.repeat(64) }), 'spec.nodeLabel', /1-63/],
    ['cleanup Delete', base({ cleanup: 'Delete' }), 'spec.cleanup', /must be one of Unpin, Remove/],
  ];

  it.each(cases)('rejects %s, naming %s', (_label, input, field, message) => {
    const { prePull, issues } = validatePrePull(input);
    expect(prePull).toBeUndefined();
    const issue = issues.find((i) => i.field === field);
    expect(issue?.message).toMatch(message);
  });

  it('reports every problem at once', () => {
    const { issues } = validatePrePull(base({ pullPolicy: 'x', verify: 'y', backoffLimit: 'z' }));
    expect(issues.map((i) => i.field).sort()).toEqual([
      'spec.backoffLimit',
      'spec.pullPolicy',
      'spec.verify',
    ]);
  });

  it('rejects an unknown top-level field, and takes status (the API sends it)', () => {
    const bogus = { ...(base() as object), bogus: 1 };
    expect(validatePrePull(bogus).issues).toEqual([
      {
        field: 'bogus',
        message: 'unknown field; known fields are apiVersion, kind, metadata, spec, status',
      },
    ]);
    expect(validatePrePull({ ...(base() as object), status: {} }).issues).toEqual([]);
  });

  it('shows a selector value that is a map as JSON, not "[object Object]"', () => {
    const { issues } = validatePrePull(base({ nodeSelector: { zone: { a: 1 } } }));
    expect(issues).toEqual([
      { field: 'spec.nodeSelector["zone"]', message: 'label values are strings, got {"a":1}' },
    ]);
  });

  it('rejects an image longer than any reference before anything else sees it, quoting 80 characters', () => {
    const long = `r:5000/${'a'.repeat(5_000_000)}:1`;
    const { prePull, issues } = validatePrePull(base({ images: [{ image: long }] }));
    expect(prePull).toBeUndefined();
    expect(issues).toHaveLength(1);
    expect(issues[0]?.field).toBe('spec.images[0].image');
    expect(issues[0]?.message).toMatch(
      /^"r:5000\/a+\.\.\. is 5000009 characters long; an image reference has at most 2048$/,
    );
    expect(issues[0]?.message.length).toBeLessThan(200);
  });

  it('rejects a control character in an image (NUL, newline, escape) without showing the image', () => {
    const images = ['r:5000/a\u0000b:1', 'r:5000/a:1\n{"msg":"forged"}', 'r:5000/a\u001b[31m:1'];
    const { prePull, issues } = validatePrePull(
      base({ images: images.map((image) => ({ image })) }),
    );
    expect(prePull).toBeUndefined();
    expect(issues).toEqual([
      {
        field: 'spec.images[0].image',
        message:
          'holds the control character U+0000 at offset 8; an image reference is printable text',
      },
      {
        field: 'spec.images[1].image',
        message:
          'holds the control character U+000A at offset 10; an image reference is printable text',
      },
      {
        field: 'spec.images[2].image',
        message:
          'holds the control character U+001B at offset 8; an image reference is printable text',
      },
    ]);
  });

  it("names YAML's .nan and .inf as themselves, not as JSON's null", () => {
    const { issues } = validatePrePull(
      base({ scheduleJitterSeconds: NaN, timeoutSeconds: Infinity, backoffLimit: -Infinity }),
    );
    expect(issues.map((i) => i.message)).toEqual([
      'must be a whole number from 0 to 3600, got NaN',
      'must be a whole number from 1 to 86400, got Infinity',
      'must be a whole number from 0 to 100, got -Infinity',
    ]);
  });

  it('leaves reference grammar to the engine: a bad reference fails only its image', () => {
    expect(
      validatePrePull(base({ images: [{ image: 'UPPER/case:x' }, { image: 'ok:1' }] })).issues,
    ).toEqual([]);
  });
});

describe('schedules and selectors', () => {
  it('accepts five- and six-field cron expressions', () => {
    expect(scheduleProblem('*/30 * * * *')).toBeUndefined();
    expect(scheduleProblem('0 */5 * * * *')).toBeUndefined();
    expect(scheduleProblem('every hour')).toMatch(/not a valid cron schedule/);
  });

  it('accepts IANA time zone names the tz database knows, aliases and Etc zones included', () => {
    for (const zone of [
      'Europe/Berlin',
      'UTC',
      'Etc/UTC',
      'GMT',
      'Etc/GMT+5',
      'America/Argentina/Buenos_Aires',
      'America/Port-au-Prince',
      'US/Pacific',
      'Asia/Calcutta',
      'EST5EDT',
    ]) {
      expect([zone, timeZoneProblem(zone)]).toEqual([zone, undefined]);
    }
  });

  it('takes a time zone with or without a schedule, and no time zone as the local one', () => {
    expect(validatePrePull(base({ timeZone: 'UTC' })).prePull?.spec.timeZone).toBe('UTC');
    const spec = validatePrePull(base({ schedule: '0 2 * * *', timeZone: null })).prePull?.spec;
    expect(spec).toMatchObject({ schedule: '0 2 * * *', scheduleJitterSeconds: 300 });
    expect(spec).not.toHaveProperty('timeZone');
    expect(
      validatePrePull(base({ scheduleJitterSeconds: 3600 })).prePull?.spec.scheduleJitterSeconds,
    ).toBe(3600);
  });

  it('selects nodes whose labels include every selector pair', () => {
    expect(selectsNode({}, {})).toBe(true);
    expect(selectsNode({ a: '1' }, { a: '1', b: '2' })).toBe(true);
    expect(selectsNode({ a: '1' }, { a: '2' })).toBe(false);
    expect(selectsNode({ a: '' }, {})).toBe(false);
  });
});
