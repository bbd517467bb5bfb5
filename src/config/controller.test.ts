import { describe, expect, it } from '@jest/globals';
import { CONTROLLER_USAGE, parseControllerArgs } from './controller.ts';

const host = { hostname: () => 'build-7', suffix: () => '5eed' };
const parse = (argv: string[], env: Record<string, string> = {}) =>
  parseControllerArgs(argv, env, host);

describe('prepull controller flags', () => {
  it('defaults to client-go’s lease timing, the downward API’s names and no metrics server', () => {
    expect(parse([], { POD_NAME: 'prepull-controller-7d9f-x2k', POD_NAMESPACE: 'ops' })).toEqual({
      logLevel: 'info',
      admissionTimeoutMs: 300_000,
      statusIntervalMs: 1000,
      leaderElect: true,
      leaseNamespace: 'ops',
      leaseName: 'prepull-controller',
      identity: 'prepull-controller-7d9f-x2k',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2000,
      pullSecretNamespace: 'ops',
      pullSecretResyncMs: 60_000,
    });
  });

  it('outside a Pod: prepull-system, and the host name with a random suffix', () => {
    expect(parse([])).toMatchObject({ leaseNamespace: 'prepull-system', identity: 'build-7_5eed' });
    expect(parse([], { POD_NAMESPACE: '' })).toMatchObject({
      leaseNamespace: 'prepull-system',
      pullSecretNamespace: 'prepull-system',
    });
  });

  it('parses every flag', () => {
    expect(
      parse(
        [
          '--kubeconfig',
          '/k/config',
          '--metrics-address',
          ':9465',
          '--log-level',
          'debug',
          '--log-format',
          'text',
          '--max-concurrent-nodes',
          '25',
          '--admission-timeout',
          '120',
          '--status-interval',
          '0.5',
          '--leader-elect=false',
          '--lease-namespace',
          'kube-system',
          '--lease-name',
          'prepull.leader',
          '--identity',
          'me',
          '--lease-duration',
          '30',
          '--renew-deadline',
          '20',
          '--retry-period',
          '2.5',
          '--pull-secret-namespace',
          'agents',
          '--pull-secret-resync',
          '15',
        ],
        { POD_NAME: 'ignored', POD_NAMESPACE: 'ignored' },
      ),
    ).toEqual({
      kubeconfig: '/k/config',
      metricsAddress: { host: '0.0.0.0', port: 9465 },
      logLevel: 'debug',
      logFormat: 'text',
      maxConcurrentNodes: 25,
      admissionTimeoutMs: 120_000,
      statusIntervalMs: 500,
      leaderElect: false,
      leaseNamespace: 'kube-system',
      leaseName: 'prepull.leader',
      identity: 'me',
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 2500,
      pullSecretNamespace: 'agents',
      pullSecretResyncMs: 15_000,
    });
  });

  it('takes --leader-elect as client-go does: bare, =true or =false', () => {
    expect(parse(['--leader-elect'])).toMatchObject({ leaderElect: true });
    expect(parse(['--leader-elect=true'])).toMatchObject({ leaderElect: true });
    expect(parse(['--leader-elect=false'])).toMatchObject({ leaderElect: false });
    expect(() => parse(['--leader-elect=no'])).toThrow(
      /--leader-elect must be true or false, got "no"; run `prepull controller --help`/,
    );
  });

  it('names the bad flag and points at controller help', () => {
    const bad: [string[], RegExp][] = [
      [['--max-concurrent-nodes', '0'], /--max-concurrent-nodes must be a whole number from 1/],
      [['--max-concurrent-nodes', '2.5'], /--max-concurrent-nodes .* got "2.5"/],
      [['--admission-timeout', '5m'], /--admission-timeout must be a number of seconds .* "5m"/],
      [['--status-interval', '0'], /--status-interval must be a number of seconds from 0.1/],
      [['--lease-duration', '15.5'], /--lease-duration must be a whole number of seconds/],
      [['--retry-period', ''], /--retry-period must be a number of seconds/],
      [['--renew-deadline', '20'], /--lease-duration must be longer than --renew-deadline/],
      [['--retry-period', '10'], /--renew-deadline must be longer than --retry-period/],
      [['--lease-namespace', 'Ops'], /--lease-namespace must be a namespace name .* "Ops"/],
      [['--lease-name', 'a_b'], /--lease-name must be a Lease name/],
      [['--identity', ' '], /--identity must be 1 to 253 characters/],
      [['--metrics-address', 'nope'], /--metrics-address: "nope" is not HOST:PORT/],
      [['--log-level', 'loud'], /--log-level must be one of/],
      [['--log-format', 'pretty'], /--log-format must be one of json, text/],
      [['--bogus'], /--bogus/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parse(argv)).toThrow(message);
      expect(() => parse(argv)).toThrow(/run `prepull controller --help`$/);
    }
    expect(parse(['--help'])).toBe('help');
    expect(parse(['-h'])).toBe('help');
  });

  it('documents every flag it parses', () => {
    for (const flag of [
      '--kubeconfig',
      '--max-concurrent-nodes',
      '--admission-timeout',
      '--status-interval',
      '--leader-elect',
      '--lease-namespace',
      '--lease-name',
      '--identity',
      '--lease-duration',
      '--renew-deadline',
      '--retry-period',
      '--metrics-address',
      '--log-level',
      '--log-format',
    ]) {
      expect(CONTROLLER_USAGE).toContain(flag);
    }
  });
});
