// Credential parsing and matching. The matching tables are kubelet's own
// (pkg/credentialprovider/keyring_test.go), plus the places where prepull chose differently.

import { describe, expect, it } from '@jest/globals';
import { Buffer } from 'node:buffer';
import { inspect } from 'node:util';
import { isPrepullError } from '../errors.ts';
import {
  CredentialChain,
  Keyring,
  globMatch,
  parseDockerConfigFile,
  parseDockerConfigJson,
  parseDockercfg,
  parseImagePullSecret,
  parseRegistryKey,
  registryKeyMatches,
} from './credentials.ts';
import { RegistryCredential } from '../image/credential.ts';
import type { CredentialSource } from './credentials.ts';
import { parseReference } from '../image/reference.ts';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** A dockercfg-format source whose credential usernames name the keys' owners. */
function source(name: string, keys: Record<string, string>): CredentialSource {
  const map = Object.fromEntries(
    Object.entries(keys).map(([key, user]) => [key, { auth: b64(`${user}:pw-${user}`) }]),
  );
  return parseDockercfg(JSON.stringify(map), name);
}

function users(lookup: { lookup: Keyring['lookup'] }, image: string): (string | undefined)[] {
  return lookup.lookup(parseReference(image)).map((credential) => credential.username);
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    if (error instanceof Error) return error;
  }
  throw new Error('expected a throw');
}

describe('registryKeyMatches: keyring_test.go TestURLsMatch', () => {
  it.each([
    // match when there is no path component
    ['*.kubernetes.io', 'prefix.kubernetes.io', true],
    ['prefix.*.io', 'prefix.kubernetes.io', true],
    ['prefix.kubernetes.*', 'prefix.kubernetes.io', true],
    ['*-good.kubernetes.io', 'prefix-good.kubernetes.io', true],
    // match with path components
    ['*.kubernetes.io/blah', 'prefix.kubernetes.io/blah', true],
    ['prefix.*.io/foo', 'prefix.kubernetes.io/foo/bar', true],
    // match with path components and ports
    ['*.kubernetes.io:1111/blah', 'prefix.kubernetes.io:1111/blah', true],
    ['prefix.*.io:1111/foo', 'prefix.kubernetes.io:1111/foo/bar', true],
    // no match when number of parts mismatch
    ['*.kubernetes.io', 'kubernetes.io', false],
    ['*.*.kubernetes.io', 'prefix.kubernetes.io', false],
    ['*.*.kubernetes.io', 'kubernetes.io', false],
    ['*kubernetes.io', 'a.kubernetes.io', false],
    // match when number of parts match
    ['*kubernetes.io', 'kubernetes.io', true],
    ['*.*.*.kubernetes.io', 'a.b.c.kubernetes.io', true],
    // no match when some parts mismatch
    ['kubernetes.io', 'kubernetes.com', false],
    ['k*.io', 'quay.io', false],
    // no match when ports mismatch
    ['*.kubernetes.io:1234/blah', 'prefix.kubernetes.io:1111/blah', false],
    ['prefix.*.io/foo', 'prefix.kubernetes.io:1111/foo/bar', false],
  ])('%s vs %s → %s', (glob, target, expected) => {
    expect(registryKeyMatches(glob, target)).toBe(expected);
  });
});

describe('registryKeyMatches: keyring_test.go TestDockerKeyringForGlob (hits)', () => {
  it.each([
    ['https://hello.kubernetes.io', 'hello.kubernetes.io'],
    ['https://*.docker.io', 'prefix.docker.io'],
    ['https://prefix.*.io', 'prefix.docker.io'],
    ['https://prefix.docker.*', 'prefix.docker.io'],
    ['https://*.docker.io/path', 'prefix.docker.io/path'],
    ['https://prefix.*.io/path', 'prefix.docker.io/path/subpath'],
    ['https://prefix.docker.*/path', 'prefix.docker.io/path'],
    ['https://*.docker.io:8888', 'prefix.docker.io:8888'],
    ['https://prefix.*.io:8888', 'prefix.docker.io:8888'],
    ['https://prefix.docker.*:8888', 'prefix.docker.io:8888'],
    ['https://*.docker.io/path:1111', 'prefix.docker.io/path:1111'],
    ['https://*.docker.io/v1/', 'prefix.docker.io/path:1111'],
    ['https://*.docker.io/v2/', 'prefix.docker.io/path:1111'],
    ['https://prefix.docker.*/path:1111', 'prefix.docker.io/path:1111'],
    ['prefix.docker.io:1111', 'prefix.docker.io:1111/path'],
    ['*.docker.io:1111', 'prefix.docker.io:1111/path'],
  ])('%s matches %s/foo/bar', (glob, target) => {
    expect(registryKeyMatches(glob, `${target}/foo/bar`)).toBe(true);
    // The same key read from a dockercfg keeps its credential intact.
    const parsed = parseDockercfg(
      JSON.stringify({ [glob]: { email: 'foo@bar.baz', auth: b64('foo:bar') } }),
      'test',
    );
    expect(parsed.entries[0]?.credential.username).toBe('foo');
    expect(parsed.entries[0]?.credential.password).toBe('bar');
  });
});

describe('registryKeyMatches: keyring_test.go TestKeyringMiss', () => {
  it.each([
    ['https://hello.kubernetes.io', 'world.mesos.org/foo/bar'],
    ['https://*.docker.com', 'prefix.docker.io'],
    ['https://suffix.*.io', 'prefix.docker.io'],
    ['https://prefix.docker.c*', 'prefix.docker.io'],
    ['https://prefix.*.io/path:1111', 'prefix.docker.io/path/subpath:1111'],
    ['suffix.*.io', 'prefix.docker.io'],
  ])('%s misses %s/foo/bar', (glob, target) => {
    expect(registryKeyMatches(glob, `${target}/foo/bar`)).toBe(false);
  });
});

describe('Keyring: keyring_test.go TestDockerKeyringLookup', () => {
  // grace is filed under the deeper key, ada under the host
  const keyring = new Keyring([
    source('test', { 'bar.example.com/pong': 'grace', 'bar.example.com': 'ada' }),
  ]);

  it.each([
    // direct match deeper than other possible matches
    ['bar.example.com/pong', ['grace', 'ada']],
    // no direct match, deeper path ignored
    ['bar.example.com/ping', ['ada']],
    // match first part of path token (kubelet's prefix is a string prefix)
    ['bar.example.com/pongz', ['grace', 'ada']],
    // match regardless of sub-path
    ['bar.example.com/pong/pang', ['grace', 'ada']],
    // no host match
    ['example.com/x', []],
    ['foo.example.com/x', []],
  ])('%s → %j', (image, expected) => {
    expect(users(keyring, image)).toEqual(expected);
  });

  it('matches the bare host as kubelet does', () => {
    expect(registryKeyMatches('bar.example.com', 'bar.example.com')).toBe(true);
    expect(registryKeyMatches('bar.example.com/pong', 'bar.example.com')).toBe(false);
  });
});

describe('Keyring: keyring_test.go TestIssue3797 (scheme and /v1/ path mean the host)', () => {
  const keyring = new Keyring([source('test', { 'https://quay.io/v1/': 'rex' })]);

  it.each(['quay.io/foo', 'quay.io/foo/bar'])('%s', (image) => {
    expect(users(keyring, image)).toEqual(['rex']);
  });

  it('quay.io itself', () => {
    expect(registryKeyMatches('https://quay.io/v1/', 'quay.io')).toBe(true);
  });
});

describe('Keyring: Docker Hub (TestKeyringHitWith*DockerHub, TestIsDefaultRegistryMatch)', () => {
  const hub = new Keyring([source('test', { 'https://index.docker.io/v1/': 'foo' })]);

  it.each([
    ['google/docker-registry', ['foo']],
    ['jenkins', ['foo']],
    ['foo/bar', ['foo']],
    ['docker.io/foo/bar', ['foo']],
    ['index.docker.io/foo/bar', ['foo']],
    ['foo', ['foo']],
    ['world.mesos.org/foo/bar', []],
    ['registry.tld/foo/bar', []],
    ['registry:5000/foo/bar', []],
    ['myhostdocker.io/foo/bar', []],
  ])('%s → %j', (image, expected) => {
    expect(users(hub, image)).toEqual(expected);
  });

  it('matches the qualified form kubelet looks up', () => {
    expect(
      registryKeyMatches(
        'https://index.docker.io/v1/',
        'index.docker.io/v1//google/docker-registry',
      ),
    ).toBe(true);
  });

  // kubelet looks Docker Hub images up as "docker.io/<repository>" (ParseImageName), so keys
  // for docker.io match and the index's key is only Lookup's fallback; others never apply.
  it.each([
    ['docker.io', ['hub']],
    ['https://docker.io', ['hub']],
    ['docker.io/v1/', ['hub']],
    ['index.docker.io', ['hub']],
    ['https://index.docker.io/v1/', ['hub']],
    ['https://index.docker.io/v2/', ['hub']],
    ['https://index.docker.io/v1', []], // a path "/v1", not the index itself
    ['registry-1.docker.io', []],
    ['https://registry-1.docker.io/v2/', []],
    ['DOCKER.IO', []],
    ['Index.Docker.IO', []],
  ])('a key %s applies to every spelling of a Docker Hub image: %j', (key, expected) => {
    const keyring = new Keyring([source('test', { [key]: 'hub' })]);
    for (const image of [
      'nginx',
      'library/nginx',
      'docker.io/user/app',
      'index.docker.io/user/app',
    ]) {
      expect(users(keyring, image)).toEqual(expected);
    }
    expect(users(keyring, 'quay.io/user/app')).toEqual([]);
  });

  it.each([
    ['*.docker.io', 'a wildcard label needs a label to match'],
    ['docker.io:443', 'a port must match exactly'],
    ['index.docker.io/user', 'the path still has to be a prefix'],
  ])('%s does not cover docker.io/library/nginx: %s', (key) => {
    const keyring = new Keyring([source('test', { [key]: 'hub' })]);
    expect(users(keyring, 'nginx')).toEqual([]);
  });
});

describe('registryKeyMatches: hosts, ports and paths', () => {
  it.each([
    ['registry.internal:5000', 'registry.internal:5000/shop/web', true],
    ['registry.internal:5000', 'registry.internal/shop/web', false],
    ['registry.internal', 'registry.internal:5000/shop/web', false],
    ['http://registry.internal:5000/shop', 'registry.internal:5000/shop/web', true],
    ['registry.internal:5000/shop', 'registry.internal:5000/team/web', false],
    ['registry.internal:5000/shop/', 'registry.internal:5000/shop/web', true],
    ['localhost:5000', 'localhost:5000/app', true],
    ['localhost', 'localhost:5000/app', false],
    ['[::1]:5000', '[::1]:5000/app', true],
    ['[::1]', '[::1]/app', true],
    ['[::1]:5000', '[::2]:5000/app', false],
    // Go's url.Parse keeps the host's case and filepath.Match compares exactly
    ['Registry.Example.COM', 'registry.example.com/app', false],
    ['Registry.Example.COM', 'Registry.Example.COM/app', true],
    ['HTTPS://registry.example.com', 'registry.example.com/app', false],
    ['https://user:secret@registry.example.com/v2/', 'registry.example.com/app', true],
    ['https://registry.example.com/v2/?x=1#frag', 'registry.example.com/app', true],
    // As in Go's url.Parse, '?' starts a query, so a key cannot use the '?' glob
    ['reg?stry.example.com', 'registry.example.com/app', false],
    ['[rs]egistry.example.com', 'registry.example.com/app', true],
    ['[^r]egistry.example.com', 'registry.example.com/app', false],
    ['[a-z]*.example.com', 'registry.example.com/app', true],
    ['\\*.example.com', '*.example.com/app', true],
    ['\\*.example.com', 'registry.example.com/app', false],
    ['[.example.com', 'registry.example.com/app', false],
    ['', 'registry.example.com/app', false],
    ['https://', 'registry.example.com/app', false],
  ])('%j vs %s → %s', (key, image, expected) => {
    expect(registryKeyMatches(key, image)).toBe(expected);
  });

  it.each([
    ['*', 'anything', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['???', 'abc', true],
    ['???', 'ab', false],
    ['[]a]', 'a', false],
    ['[a-]', 'a', false],
    ['x\\', 'x', false],
  ])('globMatch(%j, %j) is %s', (pattern, text, expected) => {
    expect(globMatch(pattern, text)).toBe(expected);
  });

  it('normalises keys as kubelet Add does', () => {
    expect(parseRegistryKey('https://index.docker.io/v1/')).toEqual({
      host: 'index.docker.io',
      port: '',
      path: '',
    });
    expect(parseRegistryKey('*.GCR.io:443/v2/team')).toEqual({
      host: '*.GCR.io',
      port: '443',
      path: '/team',
    });
    expect(parseRegistryKey('https:///path')).toBeUndefined();
  });
});

/** [source, key] pairs, in source order, each with its own credential. */
function keyringOf(entries: readonly (readonly [string, string])[]): Keyring {
  const bySource = new Map<string, Record<string, unknown>>();
  for (const [name, key] of entries) {
    const map = bySource.get(name) ?? {};
    map[key] = { auth: b64(`u-${name}:p`) };
    bySource.set(name, map);
  }
  return new Keyring([...bySource].map(([name, map]) => parseDockercfg(JSON.stringify(map), name)));
}

// Which entries apply to an image, and in which order: kubelet's BasicDockerKeyring (Add's
// reverse-sorted index, Lookup's Docker Hub fallback) over the secrets of one pod. Cases marked
// "was:" are where prepull chose differently before ADR 0017.
type ParityCase = [what: string, entries: [string, string][], image: string, keys: string[]];

describe('Keyring: kubelet parity (keyring.go Add and Lookup)', () => {
  it.each<ParityCase>([
    [
      'docker.io and the index: only docker.io (was: both)',
      [
        ['a', 'docker.io'],
        ['a', 'https://index.docker.io/v1/'],
      ],
      'nginx',
      ['a docker.io'],
    ],
    [
      'the index in one secret, docker.io in another: only docker.io (was: both)',
      [
        ['a', 'https://index.docker.io/v1/'],
        ['b', 'docker.io'],
      ],
      'user/app',
      ['b docker.io'],
    ],
    [
      'the index alone: the fallback',
      [
        ['a', 'https://index.docker.io/v1/'],
        ['b', 'quay.io'],
      ],
      'docker.io/user/app',
      ['a https://index.docker.io/v1/'],
    ],
    [
      'the index from two secrets: both, in secret order',
      [
        ['a', 'index.docker.io'],
        ['b', 'https://index.docker.io/v1/'],
      ],
      'nginx',
      ['a index.docker.io', 'b https://index.docker.io/v1/'],
    ],
    [
      'a docker.io path that matches: the index unused (was: both)',
      [
        ['a', 'docker.io/team'],
        ['a', 'index.docker.io'],
      ],
      'team/app',
      ['a docker.io/team'],
    ],
    [
      'a docker.io path that does not match: the fallback',
      [
        ['a', 'docker.io/team'],
        ['a', 'index.docker.io'],
      ],
      'other/app',
      ['a index.docker.io'],
    ],
    [
      '*.io matches docker.io, so no fallback (was: the index first)',
      [
        ['a', '*.io'],
        ['a', 'index.docker.io'],
      ],
      'nginx',
      ['a *.io'],
    ],
    [
      'registry-1.docker.io: never for Docker Hub images (was: used)',
      [['a', 'registry-1.docker.io']],
      'nginx',
      [],
    ],
    [
      'registry-1.docker.io beside the index: the fallback only (was: both)',
      [
        ['a', 'https://registry-1.docker.io/v2/'],
        ['a', 'https://index.docker.io/v1/'],
      ],
      'nginx',
      ['a https://index.docker.io/v1/'],
    ],
    [
      'registry-1.docker.io is a host of its own',
      [
        ['a', 'registry-1.docker.io'],
        ['a', 'docker.io'],
      ],
      'registry-1.docker.io/library/nginx',
      ['a registry-1.docker.io'],
    ],
    ['DOCKER.IO: hosts are case-sensitive (was: used)', [['a', 'DOCKER.IO']], 'nginx', []],
    [
      'Registry.Example.com: case-sensitive (was: used)',
      [['a', 'Registry.Example.com']],
      'registry.example.com/app',
      [],
    ],
    [
      'the image written with the same case',
      [
        ['a', 'Registry.Example.com'],
        ['a', 'registry.example.com'],
      ],
      'Registry.Example.com/app',
      ['a Registry.Example.com'],
    ],
    [
      'no Docker Hub credentials for localhost (kubelet would: ADR 0017)',
      [['a', 'https://index.docker.io/v1/']],
      'localhost/app',
      [],
    ],
    [
      'the fallback is per keyring, not per image: quay.io matched',
      [
        ['a', 'quay.io'],
        ['a', 'index.docker.io'],
      ],
      'quay.io/app',
      ['a quay.io'],
    ],
    [
      'reverse key order, not "wildcards last, longer paths first" (was: the reverse)',
      [
        ['a', '*.example.com/team'],
        ['a', 'r*.example.com'],
      ],
      'registry.example.com/team/app',
      ['a r*.example.com', 'a *.example.com/team'],
    ],
    [
      'a class sorts after digits: the wildcard first (was: the exact host first)',
      [
        ['a', '10.example.com'],
        ['a', '[0-9]0.example.com'],
      ],
      '10.example.com/app',
      ['a [0-9]0.example.com', 'a 10.example.com'],
    ],
    [
      'longer paths first, one key from two secrets in secret order',
      [
        ['a', 'quay.io'],
        ['b', 'https://quay.io/v1/'],
        ['b', 'quay.io/team'],
      ],
      'quay.io/team/app',
      ['b quay.io/team', 'a quay.io', 'b https://quay.io/v1/'],
    ],
  ])('%s', (_what, entries, image, expected) => {
    const found = keyringOf(entries).lookup(parseReference(image));
    expect(found.map((c) => `${c.source} ${c.key}`)).toEqual(expected);
  });

  it('falls back per keyring, as kubelet unions the pod secrets and the node', () => {
    const secrets = keyringOf([['secret', 'docker.io']]);
    const node = keyringOf([['node', 'https://index.docker.io/v1/']]);
    const found = new CredentialChain([secrets, node]).lookup(parseReference('nginx'));
    expect(found.map((c) => `${c.source} ${c.key}`)).toEqual([
      'secret docker.io',
      'node https://index.docker.io/v1/',
    ]);
  });
});

describe('ordering', () => {
  it('follows the keys in reverse order (longer paths first), then source order', () => {
    const keyring = new Keyring([
      source('first', { '*.example.com': 'wild', 'registry.example.com': 'host-1' }),
      source('second', {
        'registry.example.com/team': 'team',
        'registry.example.com': 'host-2',
        '*.example.com/team/app': 'wild-deep',
      }),
      source('third', { 'https://registry.example.com/v1/': 'host-3' }),
    ]);
    expect(users(keyring, 'registry.example.com/team/app')).toEqual([
      'team',
      'host-1',
      'host-2',
      'host-3',
      'wild-deep',
      'wild',
    ]);
    expect(
      keyring.lookup(parseReference('registry.example.com/team/app')).map((c) => c.source),
    ).toEqual(['second', 'first', 'second', 'third', 'second', 'first']);
  });

  it('a chain asks each keyring in turn, as kubelet unions pull secrets and the node config', () => {
    const secrets = new Keyring([source('secret shop/regcred', { 'registry.example.com': 'pod' })]);
    const node = new Keyring([
      source('file /var/lib/kubelet/config.json', { 'registry.example.com/team/app': 'node' }),
    ]);
    const chain = new CredentialChain([secrets, node]);
    expect(users(chain, 'registry.example.com/team/app')).toEqual(['pod', 'node']);
    expect(users(chain, 'registry.example.com/other')).toEqual(['pod']);
    expect(users(chain, 'elsewhere.example.com/app')).toEqual([]);
    expect(users(new CredentialChain([]), 'nginx')).toEqual([]);
  });
});

describe('parsing', () => {
  it('reads a kubernetes.io/dockerconfigjson secret', () => {
    const parsed = parseImagePullSecret({
      namespace: 'shop',
      name: 'regcred',
      type: 'kubernetes.io/dockerconfigjson',
      data: {
        '.dockerconfigjson': b64(
          JSON.stringify({
            auths: {
              'registry.internal:5000': {
                username: 'ci',
                password: 'p@ss:word',
                email: 'ci@example.com',
                auth: b64('ci:p@ss:word'),
              },
            },
          }),
        ),
      },
    });
    expect(parsed.name).toBe('secret shop/regcred');
    expect(parsed.entries).toHaveLength(1);
    const credential = parsed.entries[0]!.credential;
    expect(credential.source).toBe('secret shop/regcred');
    expect(credential.key).toBe('registry.internal:5000');
    expect(credential.username).toBe('ci');
    expect(credential.password).toBe('p@ss:word');
  });

  it('reads a kubernetes.io/dockercfg secret (the bare map)', () => {
    const parsed = parseImagePullSecret({
      namespace: 'shop',
      name: 'old',
      type: 'kubernetes.io/dockercfg',
      data: { '.dockercfg': b64(JSON.stringify({ 'https://quay.io': { auth: b64('u:p') } })) },
    });
    expect(
      parsed.entries.map((e) => [e.key, e.credential.username, e.credential.password]),
    ).toEqual([['https://quay.io', 'u', 'p']]);
  });

  // --docker-config keeps the token fields kubelet drops (ADR 0017).
  it('reads a Docker config.json with every field it may hold', () => {
    const parsed = parseDockerConfigFile(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
          'ghcr.io': { username: 'gh', password: 'ghp_token' },
          'myregistry.azurecr.io': {
            auth: b64('00000000-0000-0000-0000-000000000000:'),
            identitytoken: 'refresh-token',
          },
          'registry.example.com': { registrytoken: 'bearer-token' },
          'both.example.com': { auth: b64('fromauth:a'), username: 'plain', password: 'b' },
          'unpadded.example.com': { auth: b64('ab:c').replace(/=+$/, '') },
          'wrapped.example.com': { auth: `${b64('wrapped:user')}\n` },
          'null.example.com': null,
          'Mixed.Example.com': { Username: 'caps', PASSWORD: 'still-read' },
        },
        credsStore: 'desktop',
        credHelpers: { 'gcr.io': 'gcloud' },
      }),
      'file /root/.docker/config.json',
    );
    const byKey = Object.fromEntries(parsed.entries.map((e) => [e.key, e.credential]));
    expect(byKey['https://index.docker.io/v1/']?.username).toBe('hubuser');
    expect(byKey['https://index.docker.io/v1/']?.password).toBe('hubpass');
    expect(byKey['ghcr.io']?.password).toBe('ghp_token');
    expect(byKey['myregistry.azurecr.io']?.identityToken).toBe('refresh-token');
    expect(byKey['myregistry.azurecr.io']?.password).toBe('');
    expect(byKey['registry.example.com']?.registryToken).toBe('bearer-token');
    expect(byKey['registry.example.com']?.username).toBeUndefined();
    // "auth" wins over username/password, as in kubelet's config.go and the Docker CLI
    expect(byKey['both.example.com']?.username).toBe('fromauth');
    expect(byKey['both.example.com']?.password).toBe('a');
    expect(byKey['unpadded.example.com']?.username).toBe('ab');
    expect(byKey['wrapped.example.com']?.username).toBe('wrapped');
    expect(byKey['null.example.com']?.username).toBeUndefined();
    expect(byKey['Mixed.Example.com']?.password).toBe('still-read');
    expect(parsed.ignoredKeys).toEqual([]);
  });

  // kubelet's DockerConfigEntry has no token fields: a pull like kubelet's never sends them.
  it('drops identitytoken and registrytoken from pull secrets, as kubelet does', () => {
    const auths = {
      'myregistry.azurecr.io': {
        auth: b64('00000000-0000-0000-0000-000000000000:'),
        identitytoken: 'refresh-token',
      },
      'registry.example.com': { registrytoken: 'bearer-token' },
      // not read at all, so not refused either (kubelet ignores unknown fields)
      'typed.example.com': { username: 'u', password: 'p', identitytoken: { x: 1 } },
    };
    for (const parsed of [
      parseImagePullSecret({
        namespace: 'shop',
        name: 'acr',
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': b64(JSON.stringify({ auths })) },
      }),
      parseImagePullSecret({
        namespace: 'shop',
        name: 'old',
        type: 'kubernetes.io/dockercfg',
        data: { '.dockercfg': b64(JSON.stringify(auths)) },
      }),
    ]) {
      const byKey = Object.fromEntries(parsed.entries.map((e) => [e.key, e.credential]));
      expect(byKey['myregistry.azurecr.io']?.identityToken).toBeUndefined();
      expect(byKey['myregistry.azurecr.io']?.username).toBe('00000000-0000-0000-0000-000000000000');
      expect(byKey['registry.example.com']?.registryToken).toBeUndefined();
      expect(byKey['typed.example.com']?.password).toBe('p');
      expect(JSON.stringify(byKey)).not.toContain('Token');
    }
  });

  it('treats a config.json without auths as empty, and keeps keys that name no host aside', () => {
    expect(parseDockerConfigFile('{"credsStore": "desktop"}', 'file c.json').entries).toEqual([]);
    const parsed = parseDockerConfigJson(
      JSON.stringify({ auths: { 'https://': { auth: b64('a:b') }, 'r.io': { auth: b64('c:d') } } }),
      'secret a/b',
    );
    expect(parsed.ignoredKeys).toEqual(['https://']);
    expect(parsed.entries.map((e) => e.key)).toEqual(['r.io']);
  });

  it('hides user info written into a key', () => {
    const parsed = parseDockercfg(
      JSON.stringify({ 'https://me:hunter2@r.example.com': { auth: b64('a:b') } }),
      'file x',
    );
    expect(parsed.entries[0]?.key).toBe('https://[redacted]@r.example.com');
    expect(registryKeyMatches('https://me:hunter2@r.example.com', 'r.example.com/app')).toBe(true);
  });
});

describe('malformed credentials', () => {
  const SECRET = 's3cr3t-Pa55';
  // "qz7-bot:" then a password whose first bytes are no UTF-8 (a Latin-1 "é" and 0xff).
  const NOT_UTF8_BYTES = Buffer.concat([
    Buffer.from('qz7-bot:'),
    Buffer.from([0xe9, 0xff]),
    Buffer.from(SECRET),
  ]);
  const NOT_UTF8_AUTH = NOT_UTF8_BYTES.toString('base64');
  const secret =
    (data: Record<string, string>, type = 'kubernetes.io/dockerconfigjson') =>
    () =>
      parseImagePullSecret({ namespace: 'shop', name: 'regcred', type, data });
  const dockerconfigjson = (auths: unknown) =>
    secret({ '.dockerconfigjson': b64(JSON.stringify({ auths })) });

  it.each([
    [
      'JSON that does not parse, with the secret next to the fault',
      secret({ '.dockerconfigjson': b64(`{"auths": {"r.io": {"password": "${SECRET}" oops}}}`) }),
      ['secret shop/regcred', 'not valid JSON'],
    ],
    [
      'JSON cut short',
      secret({ '.dockerconfigjson': b64(`{"auths": {"r.io": {"password": "${SECRET}`) }),
      ['secret shop/regcred', 'not valid JSON'],
    ],
    ['a JSON array', secret({ '.dockerconfigjson': b64('[1]') }), ['not a JSON object']],
    [
      'the dockercfg format in a dockerconfigjson secret',
      secret({
        '.dockerconfigjson': b64(JSON.stringify({ 'r.io': { auth: b64(`u:${SECRET}`) } })),
      }),
      ['no "auths"', 'dockercfg'],
    ],
    ['auths that is not a map', dockerconfigjson('r.io'), ['not a map of registries']],
    [
      'an entry that is not an object',
      dockerconfigjson({ 'r.io': SECRET }),
      ['"r.io"', 'not an object'],
    ],
    [
      'an auth that is not base64',
      dockerconfigjson({ 'r.io': { auth: `${SECRET}!!` } }),
      ['secret shop/regcred', '"r.io"', '"auth" field is not valid base64'],
    ],
    [
      'an auth of the wrong padded length',
      dockerconfigjson({ 'r.io': { auth: 'YWJj=' } }),
      ['"r.io"', 'not valid base64'],
    ],
    [
      'an auth whose bytes are not UTF-8',
      dockerconfigjson({ 'r.io': { auth: NOT_UTF8_AUTH } }),
      ['secret shop/regcred', '"r.io"', '"auth" field decodes to bytes that are not UTF-8'],
    ],
    [
      'an auth without ":"',
      dockerconfigjson({ 'r.io': { auth: b64(`user${SECRET}`) } }),
      ['"r.io"', 'without ":"'],
    ],
    [
      'a password that is not a string',
      dockerconfigjson({ 'r.io': { username: 'u', password: 12345 } }),
      ['"r.io"', '"password" field is a number'],
    ],
    [
      'an identity token that is an object, in a docker config.json',
      () =>
        parseDockerConfigFile(
          JSON.stringify({ auths: { 'r.io': { identitytoken: { value: SECRET } } } }),
          'docker config c.json',
        ),
      ['docker config c.json', '"identitytoken" field is an object'],
    ],
    ['a secret of another type', secret({}, 'Opaque'), ['secret shop/regcred', '"Opaque"']],
    [
      'a secret without its data key',
      secret({ '.dockercfg': 'e30=' }),
      ['no .dockerconfigjson data'],
    ],
    [
      'secret data that is not base64',
      secret({ '.dockerconfigjson': '%%%' }),
      ['.dockerconfigjson data that is not valid base64'],
    ],
  ])('%s', (_name, parse, parts) => {
    const error = thrown(parse);
    expect(isPrepullError(error, 'ERR_CREDENTIALS_INVALID')).toBe(true);
    for (const part of parts) expect(error.message).toContain(part);
    expect(error.message).not.toContain(SECRET);
    expect(error.message).not.toContain(b64(`u:${SECRET}`));
    expect(inspect(error)).not.toContain(SECRET);
    expect(error.cause).toBeUndefined();
  });

  it('says where an auth is not UTF-8 and holds no part of its value', () => {
    const auths = { 'good.io': { auth: b64('a:b') }, 'r.io': { auth: NOT_UTF8_AUTH } };
    for (const parse of [
      () => dockerconfigjson(auths)(),
      () => parseDockerConfigFile(JSON.stringify({ auths }), 'docker config /root/c.json'),
    ]) {
      const error = thrown(parse);
      expect(isPrepullError(error, 'ERR_CREDENTIALS_INVALID')).toBe(true);
      expect(error.message).toMatch(
        /(secret shop\/regcred|docker config \/root\/c\.json) for "r\.io"/,
      );
      expect(error.cause).toBeUndefined();
      // Every rendering, against every 5-character piece of the base64 and of the bytes
      // (as Latin-1, UTF-8 with U+FFFD, and hex).
      const rendered = [error.message, inspect(error), JSON.stringify(error), String(error.stack)];
      const values = [
        NOT_UTF8_AUTH,
        NOT_UTF8_BYTES.toString('latin1'),
        NOT_UTF8_BYTES.toString('utf8'),
        NOT_UTF8_BYTES.toString('hex'),
      ];
      for (const value of values) {
        for (let i = 0; i + 5 <= value.length; i++) {
          const piece = value.slice(i, i + 5);
          for (const text of rendered) expect(text).not.toContain(piece);
        }
      }
    }
  });

  it('accepts an auth in UTF-8 beyond ASCII, unchanged', () => {
    const parsed = parseDockerConfigJson(
      JSON.stringify({ auths: { 'r.io': { auth: b64('jürgen:pässwörd-✓-😀') } } }),
      'secret a/b',
    );
    expect(parsed.entries[0]?.credential.username).toBe('jürgen');
    expect(parsed.entries[0]?.credential.password).toBe('pässwörd-✓-😀');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('u:p')]);
    const withBom = parseDockerConfigJson(
      JSON.stringify({ auths: { 'r.io': { auth: bom.toString('base64') } } }),
      'secret a/b',
    );
    expect(withBom.entries[0]?.credential.username).toBe('\ufeffu'); // bytes kept, as in Go
  });

  it('also refuses a bad dockercfg or config.json by name', () => {
    const error = thrown(() => parseDockercfg('{', 'file /etc/docker/cfg'));
    expect(error.message).toContain('file /etc/docker/cfg');
    const error2 = thrown(() =>
      parseDockerConfigFile('{"auths": {"r.io": {"auth": "eA=="}}}', 'file c.json'),
    );
    expect(isPrepullError(error2, 'ERR_CREDENTIALS_INVALID')).toBe(true);
    expect(error2.message).toContain('file c.json');
  });
});

describe('redaction', () => {
  const PASSWORD = 'hunter2-very-secret';
  const IDENTITY = 'identity-refresh-secret';
  const REGISTRY = 'registry-bearer-secret';
  const credential = new RegistryCredential({
    source: 'secret shop/regcred',
    key: 'registry.internal:5000',
    username: 'ci',
    password: PASSWORD,
    identityToken: IDENTITY,
    registryToken: REGISTRY,
  });
  const secrets = [PASSWORD, IDENTITY, REGISTRY];

  it.each([
    ['JSON.stringify', () => JSON.stringify(credential)],
    ['JSON.stringify nested', () => JSON.stringify({ creds: [credential] })],
    ['util.inspect', () => inspect(credential)],
    ['util.inspect nested, deep', () => inspect({ a: { b: [credential] } }, { depth: 10 })],
    ['util.inspect showHidden', () => inspect(credential, { showHidden: true })],
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the accident under test
    ['a template string', () => `${credential}`],
    ['String()', () => String(credential)],
    ['Array.join', () => ['using', credential].join(' ')],
    ['Object.entries', () => JSON.stringify(Object.entries(credential))],
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- the accident under test
    ['a spread copy', () => inspect({ ...credential })],
  ])('%s leaves the secrets out', (_how, render) => {
    const text = render();
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).toContain('regcred');
  });

  it('shows that secrets exist without showing them', () => {
    expect(JSON.parse(JSON.stringify(credential))).toEqual({
      source: 'secret shop/regcred',
      key: 'registry.internal:5000',
      username: 'ci',
      password: '[redacted]',
      identityToken: '[redacted]',
      registryToken: '[redacted]',
    });
    expect(inspect(credential)).toContain('[redacted]');
    expect(String(credential)).toBe(
      'credentials from secret shop/regcred for "registry.internal:5000" as "ci"',
    );
  });

  it('still gives the secrets to code that asks for them', () => {
    expect(credential.password).toBe(PASSWORD);
    expect(credential.identityToken).toBe(IDENTITY);
    expect(credential.registryToken).toBe(REGISTRY);
  });

  it('keeps parsed credentials redacted too', () => {
    const parsed = parseDockerConfigJson(
      JSON.stringify({ auths: { 'r.io': { auth: b64(`u:${PASSWORD}`) } } }),
      'secret a/b',
    );
    const found = new Keyring([parsed]).lookup(parseReference('r.io/app'));
    expect(found).toHaveLength(1);
    expect(JSON.stringify(found)).not.toContain(PASSWORD);
    expect(inspect(found)).not.toContain(PASSWORD);
    expect(found[0]?.password).toBe(PASSWORD);
  });
});
