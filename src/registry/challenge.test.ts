// WWW-Authenticate parsing vectors, and the Bearer parameters read from a challenge.
import { describe, expect, it } from '@jest/globals';
import { bearerChallenge, parseChallenges } from './challenge.ts';

describe('parseChallenges', () => {
  const cases: [string, ReturnType<typeof parseChallenges>][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/nginx:pull',
          },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    // commas inside quotes, escapes, spaces around "=", unquoted values, case
    [
      'BEARER Realm = "https://a/token" , scope="repository:a:pull,push",service=reg',
      [
        {
          scheme: 'bearer',
          params: { realm: 'https://a/token', scope: 'repository:a:pull,push', service: 'reg' },
        },
      ],
    ],
    ['Basic realm="say \\"hi\\""', [{ scheme: 'basic', params: { realm: 'say "hi"' } }]],
    // several challenges in one header (or headers joined with ", ")
    [
      'Basic realm="x", Bearer realm="https://y/token",service="z"',
      [
        { scheme: 'basic', params: { realm: 'x' } },
        { scheme: 'bearer', params: { realm: 'https://y/token', service: 'z' } },
      ],
    ],
    // token68 challenges do not swallow the next one
    [
      'Negotiate YIIGhgYJKoZI==, Basic realm="x"',
      [
        { scheme: 'negotiate', params: {}, token68: 'YIIGhgYJKoZI==' },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['Negotiate', [{ scheme: 'negotiate', params: {} }]],
    // the error a registry adds when a token lacks access
    [
      'Bearer realm="https://t/token",service="s",scope="repository:a:pull",error="insufficient_scope"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://t/token',
            service: 's',
            scope: 'repository:a:pull',
            error: 'insufficient_scope',
          },
        },
      ],
    ],
    // an unterminated quote takes the rest
    ['Basic realm="open', [{ scheme: 'basic', params: { realm: 'open' } }]],
    ['', []],
    [' , ,', []],
  ];
  it.each(cases)('%j', (header, expected) => {
    expect(parseChallenges(header)).toEqual(expected);
  });
});

describe('bearerChallenge', () => {
  it('reads realm, service, scope and error', () => {
    const [c] = parseChallenges('Bearer realm="https://t.test/token",service="s",scope="x"');
    expect(bearerChallenge(c!, 'r.test')).toEqual({
      realm: new URL('https://t.test/token'),
      service: 's',
      scope: 'x',
    });
  });

  it.each(['Bearer service="s"', 'Bearer realm="/token"', 'Bearer realm="ftp://t/token"'])(
    'refuses %j as a protocol error',
    (header) => {
      const [c] = parseChallenges(header);
      expect(() => bearerChallenge(c!, 'r.test')).toThrow(
        expect.objectContaining({ code: 'ERR_REGISTRY_PROTOCOL' }),
      );
    },
  );
});
