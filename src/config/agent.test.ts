import { describe, expect, it } from '@jest/globals';
import { parseAgentArgs } from './agent.ts';

describe('prepull agent flags', () => {
  it('takes the node name from NODE_NAME (the downward API) when --node-name is absent', () => {
    const config = parseAgentArgs([], { NODE_NAME: 'worker-7' });
    expect(config).toMatchObject({
      nodeName: 'worker-7',
      pullConcurrency: 2,
      logLevel: 'info',
      shutdownGraceMs: 20_000,
      cleanup: 'Unpin',
      insecureRegistries: [],
      requireAdmission: false,
      heartbeatMs: 60_000,
      stallTimeoutMs: 120_000,
      pullSecrets: 'copy',
      pullSecretNamespace: 'prepull-system',
    });
    expect(config).not.toHaveProperty('kubeconfig');
  });

  // ADR 0020: the controller's copies in the agent's own namespace, unless told `direct`.
  it('reads pull secrets from copies in POD_NAMESPACE, or directly when told', () => {
    expect(parseAgentArgs([], { NODE_NAME: 'n', POD_NAMESPACE: 'ops' })).toMatchObject({
      pullSecrets: 'copy',
      pullSecretNamespace: 'ops',
    });
    expect(
      parseAgentArgs(['--pull-secrets', 'direct', '--pull-secret-namespace', 'x'], {
        NODE_NAME: 'n',
        POD_NAMESPACE: 'ops',
      }),
    ).toMatchObject({ pullSecrets: 'direct', pullSecretNamespace: 'x' });
    expect(() => parseAgentArgs(['--pull-secrets', 'both'], { NODE_NAME: 'n' })).toThrow(
      '--pull-secrets must be one of copy, direct, got "both"',
    );
    expect(() => parseAgentArgs(['--pull-secret-namespace', 'Bad_NS'], { NODE_NAME: 'n' })).toThrow(
      '--pull-secret-namespace must be a namespace name',
    );
  });

  it('prefers --node-name and parses every flag', () => {
    const config = parseAgentArgs(
      [
        '--kubeconfig',
        '/k/config',
        '--node-name',
        'n1',
        '--runtime-endpoint',
        'unix:///run/containerd/containerd.sock',
        '--runtime',
        'cri',
        '--insecure-registry',
        'reg:5000',
        '--pull-concurrency',
        '4',
        '--stall-timeout',
        '0',
        '--metrics-address',
        ':9464',
        '--shutdown-grace',
        '5',
        '--log-level',
        'debug',
        '--log-format',
        'json',
        '--require-admission',
        '--heartbeat-interval',
        '15',
        '--cleanup',
        'Remove',
        '--pull-secrets',
        'direct',
        '--pull-secret-namespace',
        'agents',
        '--image-fs-floor',
        '12.5%',
        '--pin-budget',
        '1.5Ti',
      ],
      { NODE_NAME: 'ignored', POD_NAMESPACE: 'ignored' },
    );
    expect(config).toEqual({
      kubeconfig: '/k/config',
      nodeName: 'n1',
      runtimeEndpoint: 'unix:///run/containerd/containerd.sock',
      runtime: 'cri',
      insecureRegistries: ['reg:5000'],
      registryCAs: {},
      pullConcurrency: 4,
      stallTimeoutMs: 0,
      metricsAddress: { host: '0.0.0.0', port: 9464 },
      logLevel: 'debug',
      logFormat: 'json',
      shutdownGraceMs: 5000,
      requireAdmission: true,
      heartbeatMs: 15_000,
      cleanup: 'Remove',
      pullSecrets: 'direct',
      pullSecretNamespace: 'agents',
      disk: { floor: { percent: 12.5 }, pinBudgetBytes: 1.5 * 2 ** 40 },
    });
  });

  it('refuses to start without a node name, saying where it comes from', () => {
    expect(() => parseAgentArgs([], {})).toThrow(
      /node name is required: --node-name, or NODE_NAME .*; run `prepull agent --help`/,
    );
  });

  it('names the bad flag and points at agent help', () => {
    expect(() => parseAgentArgs(['--pull-concurrency', '0'], { NODE_NAME: 'n' })).toThrow(
      /--pull-concurrency must be a whole number from 1 to 64, got "0"; run `prepull agent --help`/,
    );
    expect(() => parseAgentArgs(['--bogus'], { NODE_NAME: 'n' })).toThrow(/--bogus/);
    expect(() => parseAgentArgs(['--log-format', 'yaml'], { NODE_NAME: 'n' })).toThrow(
      /--log-format must be one of json, text, got "yaml"/,
    );
    expect(() => parseAgentArgs(['--heartbeat-interval', '0'], { NODE_NAME: 'n' })).toThrow(
      /--heartbeat-interval must be a number of seconds from 1 to 3600, got "0"/,
    );
    expect(() => parseAgentArgs(['--cleanup', 'Delete'], { NODE_NAME: 'n' })).toThrow(
      /--cleanup must be one of Unpin, Remove, got "Delete"/,
    );
    expect(parseAgentArgs(['--help'], {})).toBe('help');
  });
});
