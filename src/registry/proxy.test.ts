// Proxy selection vectors, written from Go's httpproxy rules (which kubelet, containerd and
// Docker follow), so one NO_PROXY means the same to prepull as to them.
import { describe, expect, it } from '@jest/globals';
import { proxyFor, proxyFromEnv, redactProxy } from './proxy.ts';

describe('proxyFromEnv', () => {
  it('reads the uppercase names first, then lowercase, and drops empty values', () => {
    expect(
      proxyFromEnv({
        HTTPS_PROXY: 'http://upper:3128',
        https_proxy: 'http://lower:3128',
        http_proxy: 'http://plain:3128',
        NO_PROXY: ' ',
        no_proxy: 'ignored-because-upper-is-set',
      }),
    ).toEqual({ httpsProxy: 'http://upper:3128', httpProxy: 'http://plain:3128' });
    expect(proxyFromEnv({})).toEqual({});
    expect(proxyFromEnv({ no_proxy: '.internal' })).toEqual({ noProxy: '.internal' });
  });
});

describe('proxyFor', () => {
  const config = {
    httpsProxy: 'http://proxy.corp:3128',
    httpProxy: 'proxy.corp:8080',
    noProxy:
      'registry.internal, .svc.cluster.local, *.corp.example, 10.0.0.0/8, 192.168.1.7, mirror.local:5000, [fd00::1]',
  };
  const cases: [string, string | undefined][] = [
    ['https://quay.io/v2/', 'http://proxy.corp:3128'],
    ['http://quay.io/v2/', 'http://proxy.corp:8080'], // no scheme: http://
    // the domain and its subdomains
    ['https://registry.internal/v2/', undefined],
    ['https://eu.registry.internal/v2/', undefined],
    ['https://notregistry.internal/v2/', 'http://proxy.corp:3128'],
    // leading dot or "*.": subdomains only
    ['https://svc.cluster.local/v2/', 'http://proxy.corp:3128'],
    ['https://reg.ns.svc.cluster.local/v2/', undefined],
    ['https://corp.example/v2/', 'http://proxy.corp:3128'],
    ['https://a.corp.example/v2/', undefined],
    // CIDR and single IPs
    ['https://10.1.2.3:5000/v2/', undefined],
    ['https://11.1.2.3/v2/', 'http://proxy.corp:3128'],
    ['https://192.168.1.7/v2/', undefined],
    ['https://192.168.1.8/v2/', 'http://proxy.corp:3128'],
    ['https://[fd00::1]:5000/v2/', undefined],
    // a port in the entry narrows it
    ['https://mirror.local:5000/v2/', undefined],
    ['https://mirror.local/v2/', 'http://proxy.corp:3128'],
    // case-insensitive, trailing dot ignored
    ['https://REGISTRY.internal./v2/', undefined],
    // loopback never goes through a proxy
    ['https://localhost:5000/v2/', undefined],
    ['https://127.0.0.1:5000/v2/', undefined],
    ['https://[::1]:5000/v2/', undefined],
  ];
  it.each(cases)('%s → %s', (url, expected) => {
    expect(proxyFor(new URL(url), config)).toBe(expected);
  });

  it('uses only the proxy for the scheme: https never falls back to HTTP_PROXY', () => {
    expect(proxyFor(new URL('https://quay.io/'), { httpProxy: 'http://p:1' })).toBeUndefined();
    expect(proxyFor(new URL('http://quay.io/'), { httpsProxy: 'http://p:1' })).toBeUndefined();
  });

  it('proxies nothing with NO_PROXY=*', () => {
    expect(
      proxyFor(new URL('https://quay.io/'), { httpsProxy: 'http://p:1', noProxy: 'x.test,*' }),
    ).toBeUndefined();
  });

  it('ignores malformed entries', () => {
    const noProxy = '10.0.0.0/99, bad/cidr, ,';
    expect(proxyFor(new URL('https://10.0.0.1/'), { httpsProxy: 'http://p:1', noProxy })).toBe(
      'http://p:1',
    );
  });

  it('is off without a config', () => {
    expect(proxyFor(new URL('https://quay.io/'), undefined)).toBeUndefined();
  });
});

describe('redactProxy', () => {
  it('removes user and password from a proxy URL', () => {
    expect(redactProxy('http://user:s3cret@proxy:3128')).toBe('http://[redacted]@proxy:3128');
    expect(redactProxy('http://proxy:3128')).toBe('http://proxy:3128');
  });
});
