import { describe, expect, it } from '@jest/globals';
import { parseAuditArgs, parseGenerateArgs, parsePodTemplatePaths } from './audit.ts';

describe('prepull audit flags', () => {
  it('has defaults', () => {
    expect(parseAuditArgs(['-f', 'a.yaml'])).toEqual({
      files: ['a.yaml'],
      prePulls: [],
      output: 'table',
      failOn: 'error',
      airGapped: false,
      podTemplatePaths: {},
      resolve: false,
      insecureRegistries: [],
      registryCAs: {},
    });
  });

  it('reads the registry flags of --resolve', () => {
    expect(
      parseAuditArgs([
        '-f',
        'a.yaml',
        '--resolve',
        '--docker-config',
        'c.json',
        '--insecure-registry',
        'r:5000',
        '--registry-ca',
        'r.test=ca.pem',
      ]),
    ).toMatchObject({
      resolve: true,
      dockerConfig: 'c.json',
      insecureRegistries: ['r:5000'],
      registryCAs: { 'r.test': 'ca.pem' },
    });
  });

  it('reads every flag', () => {
    const args = ['-f', '-', '-f', 'd', '--prepulls', 'p', '-o', 'sarif', '--fail-on', 'warning'];
    expect(parseAuditArgs([...args, '--air-gapped'])).toMatchObject({
      files: ['-', 'd'],
      prePulls: ['p'],
      output: 'sarif',
      failOn: 'warning',
      airGapped: true,
    });
  });

  it('parses pod template paths as dotted paths, with or without a leading dot or braces', () => {
    expect(
      parsePodTemplatePaths([
        'Rollout=spec.template.spec',
        'Foo=.spec.w.template.spec',
        'Bar={.a.b}',
      ]),
    ).toEqual({
      Rollout: ['spec', 'template', 'spec'],
      Foo: ['spec', 'w', 'template', 'spec'],
      Bar: ['a', 'b'],
    });
    for (const bad of ['spec.template', '=a.b', 'X=a..b', 'X=a[0].b', 'X=']) {
      expect(() => parsePodTemplatePaths([bad])).toThrow('is not KIND=PATH');
    }
  });

  it('rejects bad values as usage errors pointing at --help', () => {
    expect(() => parseAuditArgs(['-f', 'a', '--fail-on', 'info'])).toThrow(
      /--fail-on must be one of error, warning, never.*prepull audit --help/,
    );
    expect(() => parseAuditArgs(['-f', 'a', '--bogus'])).toThrow(/bogus/);
  });
});

describe('prepull generate flags', () => {
  it('reads a node selector and validates names', () => {
    expect(
      parseGenerateArgs([
        '-f',
        'a',
        '--name',
        'n',
        '--namespace',
        'ns',
        '--node-selector',
        'a=b,c=d',
      ]),
    ).toEqual({ files: ['a'], name: 'n', namespace: 'ns', nodeSelector: { a: 'b', c: 'd' } });
    expect(() => parseGenerateArgs(['-f', 'a', '--name', 'N!', '--namespace', 'ns'])).toThrow(
      'not a lowercase DNS name',
    );
  });
});
