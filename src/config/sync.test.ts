import { describe, expect, it } from '@jest/globals';
import { hostname } from 'node:os';
import { parseSyncArgs } from './sync.ts';

describe('parseSyncArgs', () => {
  it('applies defaults', () => {
    expect(parseSyncArgs(['-f', 'a.yaml'])).toEqual({
      files: ['a.yaml'],
      once: false,
      nodeName: hostname(),
      nodeLabels: {
        'kubernetes.io/hostname': hostname(),
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
      },
      insecureRegistries: [],
      registryCAs: {},
      pullConcurrency: 2,
      stallTimeoutMs: 120_000,
      output: 'table',
      logLevel: 'info',
      cleanup: 'Unpin',
    });
  });

  it('reads every flag', () => {
    const config = parseSyncArgs([
      '-f',
      'a.yaml',
      '--filename',
      'dir',
      '--once',
      '--node-name',
      'n1',
      '--node-labels',
      'role=worker, zone=a',
      '--runtime-endpoint',
      'unix:///run/containerd/containerd.sock',
      '--runtime',
      'cri',
      '--docker-config',
      '/root/.docker/config.json',
      '--insecure-registry',
      '10.0.0.5:5000',
      '--insecure-registry',
      'reg.lan',
      '--registry-ca',
      'r.internal:443=/etc/ca.pem',
      '--pull-concurrency',
      '4',
      '--stall-timeout',
      '0',
      '--metrics-address',
      '127.0.0.1:9464',
      '--output',
      'json',
      '--log-level',
      'debug',
      '--log-format',
      'text',
      '--cleanup',
      'Remove',
    ]);
    expect(config).toEqual({
      files: ['a.yaml', 'dir'],
      once: true,
      nodeName: 'n1',
      nodeLabels: {
        'kubernetes.io/hostname': 'n1',
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        role: 'worker',
        zone: 'a',
      },
      runtimeEndpoint: 'unix:///run/containerd/containerd.sock',
      runtime: 'cri',
      dockerConfig: '/root/.docker/config.json',
      insecureRegistries: ['10.0.0.5:5000', 'reg.lan'],
      registryCAs: { 'r.internal:443': '/etc/ca.pem' },
      pullConcurrency: 4,
      stallTimeoutMs: 0,
      metricsAddress: { host: '127.0.0.1', port: 9464 },
      output: 'json',
      logLevel: 'debug',
      logFormat: 'text',
      cleanup: 'Remove',
    });
  });

  it.each([
    [[], /-f FILE\|DIR is required/],
    [
      ['-f', 'a', '--pull-concurrency', '0'],
      /--pull-concurrency must be a whole number from 1 to 64, got "0"/,
    ],
    [
      ['-f', 'a', '--stall-timeout', '1.5'],
      /--stall-timeout must be a whole number of seconds from 0 to 86400, got "1.5"/,
    ],
    [['-f', 'a', '--runtime', 'podman'], /--runtime must be one of cri, docker, got "podman"/],
    [['-f', 'a', '--output', 'yaml'], /--output must be one of table, json/],
    [['-f', 'a', '--log-format', 'pretty'], /--log-format must be one of json, text, got "pretty"/],
    [['-f', 'a', '--node-labels', 'nokey'], /"nokey" is not key=value/],
    [['-f', 'a', '--node-labels', 'bad key=1'], /invalid label key "bad key"/],
    [['-f', 'a', '--metrics-address', 'nowhere'], /"nowhere" is not HOST:PORT/],
    [['-f', 'a', '--runtime-endpoint', '/run/x.sock'], /must be unix:\/\/\/path/],
    [['-f', 'a', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['-f', 'a', '--registry-ca', 'nofile'], /"nofile" is not HOST=FILE/],
  ])('rejects %j', (argv, message) => {
    let thrown: unknown;
    try {
      parseSyncArgs(argv);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({
      code: 'ERR_USAGE',
      message: expect.stringMatching(message),
    });
  });

  it('answers help', () => {
    expect(parseSyncArgs(['--help'])).toBe('help');
  });
});
