import { describe, expect, it } from '@jest/globals';
import { hostname } from 'node:os';
import { parseAddress, parseSyncArgs } from './sync.ts';

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
      disk: { floor: { percent: 20 } },
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
      '--image-fs-floor',
      '10Gi',
      '--pin-budget',
      '50G',
      '--image-fs-path',
      '/var/lib/containerd',
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
      disk: {
        floor: { bytes: 10 * 2 ** 30 },
        pinBudgetBytes: 50e9,
        imageFsPath: '/var/lib/containerd',
      },
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

describe('parseAddress (--metrics-address)', () => {
  it.each([
    [':9464', { host: '0.0.0.0', port: 9464 }],
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    ['10.244.1.7:9464', { host: '10.244.1.7', port: 9464 }],
    ['localhost:9464', { host: 'localhost', port: 9464 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
    ['[fd00:10:244::7]:9464', { host: 'fd00:10:244::7', port: 9464 }],
    // `$(POD_IP):9464` with an IPv6 Pod IP: the last colon separates the port.
    ['fd00:10:244::7:9464', { host: 'fd00:10:244::7', port: 9464 }],
    [':::9464', { host: '::', port: 9464 }],
  ])('%s', (text, address) => {
    expect(parseAddress(text)).toEqual(address);
  });

  it.each([
    ['9464', /"9464" is not HOST:PORT/],
    ['127.0.0.1:', /is not HOST:PORT/],
    ['127.0.0.1:65536', /is not HOST:PORT/],
    // The downward API's variable left unexpanded (no POD_IP in the container's env).
    [
      '$(POD_IP):9464',
      /"\$\(POD_IP\)" in "\$\(POD_IP\):9464" is neither an IP address nor a host name/,
    ],
    ['[10.0.0.1]:9464', /"10.0.0.1" in "\[10.0.0.1\]:9464" is not an IPv6 address/],
    ['[]:9464', /"" in "\[\]:9464" is not an IPv6 address/],
    // A bare IPv6 address without a port: its last group is no port of an address.
    ['fd00::', /"fd00:" in "fd00::" is not an IPv6 address|is not HOST:PORT/],
    ['::1', /":" in "::1" is not an IPv6 address/],
  ])('refuses %s', (text, message) => {
    expect(() => parseAddress(text)).toThrow(message);
  });
});
