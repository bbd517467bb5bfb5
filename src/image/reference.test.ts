// Reference vectors: the Docker reference grammar as distribution/reference states it, most rows
// taken from its reference_test.go and normalize_test.go, the rest from the grammar itself.

import { describe, expect, it } from '@jest/globals';
import { isPrepullError } from '../errors.ts';
import {
  isValidDigest,
  parseReference,
  referenceForManifest,
  registryApiHost,
  repositoryPath,
} from './reference.ts';

const HEX = 'dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c';
const D = `sha256:${HEX}`;
const F = `sha256:${'f'.repeat(64)}`;
const BUSYBOX = 'sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa';
const S384 = `sha384:${'a'.repeat(96)}`;
const S512 = `sha512:${'f'.repeat(128)}`;
const PATH_255 = `${'a/'.repeat(127)}a`;

interface Valid {
  input: string;
  canonical: string;
  registry: string;
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

// [input, canonical, registry, repository, tag, digest]
// prettier-ignore
const valid: [string, string, string, string, (string | undefined)?, string?][] = [
  // Docker Hub normalisation (normalize_test.go TestParseRepositoryInfo, TestParseAnyReference)
  ['nginx', 'docker.io/library/nginx:latest', 'docker.io', 'library/nginx', 'latest'],
  ['nginx:1.25', 'docker.io/library/nginx:1.25', 'docker.io', 'library/nginx', '1.25'],
  [`nginx@${D}`, `docker.io/library/nginx@${D}`, 'docker.io', 'library/nginx', undefined, D],
  [`nginx:1.25@${D}`, `docker.io/library/nginx:1.25@${D}`, 'docker.io', 'library/nginx', '1.25', D],
  ['library/nginx', 'docker.io/library/nginx:latest', 'docker.io', 'library/nginx', 'latest'],
  ['docker.io/nginx', 'docker.io/library/nginx:latest', 'docker.io', 'library/nginx', 'latest'],
  ['docker.io/library/redis:latest', 'docker.io/library/redis:latest', 'docker.io', 'library/redis', 'latest'],
  [`docker.io/library/redis@${D}`, `docker.io/library/redis@${D}`, 'docker.io', 'library/redis', undefined, D],
  ['index.docker.io/debian', 'docker.io/library/debian:latest', 'docker.io', 'library/debian', 'latest'],
  ['index.docker.io/library/debian', 'docker.io/library/debian:latest', 'docker.io', 'library/debian', 'latest'],
  ['index.docker.io/docker/docker', 'docker.io/docker/docker:latest', 'docker.io', 'docker/docker', 'latest'],
  ['index.docker.io/fooo/bar', 'docker.io/fooo/bar:latest', 'docker.io', 'fooo/bar', 'latest'],
  ['docker/docker', 'docker.io/docker/docker:latest', 'docker.io', 'docker/docker', 'latest'],
  ['dmcgowan/myapp:latest', 'docker.io/dmcgowan/myapp:latest', 'docker.io', 'dmcgowan/myapp', 'latest'],
  [`dmcgowan/myapp@${D}`, `docker.io/dmcgowan/myapp@${D}`, 'docker.io', 'dmcgowan/myapp', undefined, D],
  ['library/foo/bar', 'docker.io/library/foo/bar:latest', 'docker.io', 'library/foo/bar', 'latest'],
  ['store/foo/bar', 'docker.io/store/foo/bar:latest', 'docker.io', 'store/foo/bar', 'latest'],
  ['other/library', 'docker.io/other/library:latest', 'docker.io', 'other/library', 'latest'],
  ['ubuntu-12.04-base', 'docker.io/library/ubuntu-12.04-base:latest', 'docker.io', 'library/ubuntu-12.04-base', 'latest'],
  [`busybox:latest@${BUSYBOX}`, `docker.io/library/busybox:latest@${BUSYBOX}`, 'docker.io', 'library/busybox', 'latest', BUSYBOX],
  ['test_com', 'docker.io/library/test_com:latest', 'docker.io', 'library/test_com', 'latest'],
  ['test_com/foo', 'docker.io/test_com/foo:latest', 'docker.io', 'test_com/foo', 'latest'],
  ['dbcc1', 'docker.io/library/dbcc1:latest', 'docker.io', 'library/dbcc1', 'latest'],
  // 63 hex digits is a name; only exactly 64 is an image ID
  [HEX.slice(0, 63), `docker.io/library/${HEX.slice(0, 63)}:latest`, 'docker.io', `library/${HEX.slice(0, 63)}`, 'latest'],
  [`docker.io/${HEX}`, `docker.io/library/${HEX}:latest`, 'docker.io', `library/${HEX}`, 'latest'],
  // A first component without '.', ':' or 'localhost' is a Docker Hub namespace, not a host
  ['test.com:tag', 'docker.io/library/test.com:tag', 'docker.io', 'library/test.com', 'tag'],
  ['test.com:5000', 'docker.io/library/test.com:5000', 'docker.io', 'library/test.com', '5000'],
  ['192.168.0.1', 'docker.io/library/192.168.0.1:latest', 'docker.io', 'library/192.168.0.1', 'latest'],
  ['192.168.0.1:80', 'docker.io/library/192.168.0.1:80', 'docker.io', 'library/192.168.0.1', '80'],
  ['foo_bar.com:8080', 'docker.io/library/foo_bar.com:8080', 'docker.io', 'library/foo_bar.com', '8080'],
  ['foo/foo_bar.com:8080', 'docker.io/foo/foo_bar.com:8080', 'docker.io', 'foo/foo_bar.com', '8080'],
  ['localhost', 'docker.io/library/localhost:latest', 'docker.io', 'library/localhost', 'latest'],
  ['localhost:5000', 'docker.io/library/localhost:5000', 'docker.io', 'library/localhost', '5000'],
  // Hosts: a '.', a ':port', 'localhost', or an uppercase letter marks the first component
  ['localhost/foo', 'localhost/foo:latest', 'localhost', 'foo', 'latest'],
  ['localhost:5000/foo/bar:v1', 'localhost:5000/foo/bar:v1', 'localhost:5000', 'foo/bar', 'v1'],
  ['test:5000/repo', 'test:5000/repo:latest', 'test:5000', 'repo', 'latest'],
  ['test:5000/repo:tag', 'test:5000/repo:tag', 'test:5000', 'repo', 'tag'],
  [`test:5000/repo@${F}`, `test:5000/repo@${F}`, 'test:5000', 'repo', undefined, F],
  [`test:5000/repo:tag@${F}`, `test:5000/repo:tag@${F}`, 'test:5000', 'repo', 'tag', F],
  ['test.com/repo:tag', 'test.com/repo:tag', 'test.com', 'repo', 'tag'],
  ['test-com:8080/foo', 'test-com:8080/foo:latest', 'test-com:8080', 'foo', 'latest'],
  ['127.0.0.1:5000/docker/docker', '127.0.0.1:5000/docker/docker:latest', '127.0.0.1:5000', 'docker/docker', 'latest'],
  ['127.0.0.1:5000/library/debian', '127.0.0.1:5000/library/debian:latest', '127.0.0.1:5000', 'library/debian', 'latest'],
  ['127.0.0.1:5000/debian', '127.0.0.1:5000/debian:latest', '127.0.0.1:5000', 'debian', 'latest'],
  ['192.168.1.1/repo', '192.168.1.1/repo:latest', '192.168.1.1', 'repo', 'latest'],
  ['192.168.1.1:5000/repo:5050', '192.168.1.1:5000/repo:5050', '192.168.1.1:5000', 'repo', '5050'],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', 'sub-dom1.foo.com/bar/baz/quux:some-long-tag', 'sub-dom1.foo.com', 'bar/baz/quux', 'some-long-tag'],
  ['b.gcr.io/test.example.com/my-app:test.example.com', 'b.gcr.io/test.example.com/my-app:test.example.com', 'b.gcr.io', 'test.example.com/my-app', 'test.example.com'],
  ['xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com', 'myimage', 'xn--n3h.com'],
  [`xn--7o8h.com/myimage:xn--7o8h.com@${S512}`, `xn--7o8h.com/myimage:xn--7o8h.com@${S512}`, 'xn--7o8h.com', 'myimage', 'xn--7o8h.com', S512],
  ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080/foo:latest', 'xn--n3h.com:18080', 'foo', 'latest'],
  ['example.com:8000/private/moonbase', 'example.com:8000/private/moonbase:latest', 'example.com:8000', 'private/moonbase', 'latest'],
  ['Docker/docker', 'Docker/docker:latest', 'Docker', 'docker', 'latest'],
  ['FOO/bar', 'FOO/bar:latest', 'FOO', 'bar', 'latest'],
  // IPv6 hosts in brackets
  ['[2001:db8::1]/repo', '[2001:db8::1]/repo:latest', '[2001:db8::1]', 'repo', 'latest'],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', '[2001:db8:1:2:3:4:5:6]/repo:tag', '[2001:db8:1:2:3:4:5:6]', 'repo', 'tag'],
  [`[2001:db8::1]:5000/repo:tag@${F}`, `[2001:db8::1]:5000/repo:tag@${F}`, '[2001:db8::1]:5000', 'repo', 'tag', F],
  ['[2001:db8::]:5000/repo', '[2001:db8::]:5000/repo:latest', '[2001:db8::]:5000', 'repo', 'latest'],
  ['[::1]:5000/repo', '[::1]:5000/repo:latest', '[::1]:5000', 'repo', 'latest'],
  ['[fc00:1:2:3:4:5:6:7]:5000/library/debian', '[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest', '[fc00:1:2:3:4:5:6:7]:5000', 'library/debian', 'latest'],
  // Path components and separators (normalize_test.go TestValidateRemoteName)
  ['thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', 'docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest', 'docker.io', 'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev', 'latest'],
  ['docker-rules/docker', 'docker.io/docker-rules/docker:latest', 'docker.io', 'docker-rules/docker', 'latest'],
  ['docker---rules/docker', 'docker.io/docker---rules/docker:latest', 'docker.io', 'docker---rules/docker', 'latest'],
  ['dock__er/docker', 'docker.io/dock__er/docker:latest', 'docker.io', 'dock__er/docker', 'latest'],
  ['d/docker', 'docker.io/d/docker:latest', 'docker.io', 'd/docker', 'latest'],
  ['jess/t', 'docker.io/jess/t:latest', 'docker.io', 'jess/t', 'latest'],
  // Tags: case kept, first character a word character, at most 128
  ['lowercase:Uppercase', 'docker.io/library/lowercase:Uppercase', 'docker.io', 'library/lowercase', 'Uppercase'],
  ['registry.example.com/a/b:_tag', 'registry.example.com/a/b:_tag', 'registry.example.com', 'a/b', '_tag'],
  [`app:${'t'.repeat(128)}`, `docker.io/library/app:${'t'.repeat(128)}`, 'docker.io', 'library/app', 't'.repeat(128)],
  // Digests of every supported algorithm
  [`registry.internal:5000/shop/db@${S384}`, `registry.internal:5000/shop/db@${S384}`, 'registry.internal:5000', 'shop/db', undefined, S384],
  // The repository limit counts the path only (reference.go RepositoryNameTotalLengthMax)
  [`${PATH_255}:tag-puts-this-over-max`, `docker.io/${PATH_255}:tag-puts-this-over-max`, 'docker.io', PATH_255, 'tag-puts-this-over-max'],
  [`example.com/${PATH_255}`, `example.com/${PATH_255}:latest`, 'example.com', PATH_255, 'latest'],
  // Everyday references
  ['registry.internal:5000/shop/web:1.4.2', 'registry.internal:5000/shop/web:1.4.2', 'registry.internal:5000', 'shop/web', '1.4.2'],
  ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10', 'registry.k8s.io', 'pause', '3.10'],
  ['gcr.io/distroless/static:nonroot', 'gcr.io/distroless/static:nonroot', 'gcr.io', 'distroless/static', 'nonroot'],
  ['ghcr.io/org/app:1.0.0-rc.1_build.7', 'ghcr.io/org/app:1.0.0-rc.1_build.7', 'ghcr.io', 'org/app', '1.0.0-rc.1_build.7'],
  ['quay.io/coreos/etcd:v3.5.0', 'quay.io/coreos/etcd:v3.5.0', 'quay.io', 'coreos/etcd', 'v3.5.0'],
];

// [input, text the message must contain: the offending part, quoted]
const invalid: [string, ...string[]][] = [
  ['', 'empty'],
  [':justtag', '":justtag"', 'no repository name'],
  [`@${F}`, 'no repository name'],
  [`repo@sha256:${'f'.repeat(34)}`, `"sha256:${'f'.repeat(34)}"`, '64 hex digits', 'has 34'],
  [`validname@invaliddigest:${'f'.repeat(64)}`, 'unsupported algorithm "invaliddigest"'],
  [`nginx@SHA256:${HEX}`, 'unsupported algorithm "SHA256"'],
  [`nginx@md5:${'a'.repeat(32)}`, 'unsupported algorithm "md5"'],
  [`nginx@sha256:${HEX.toUpperCase()}`, `"sha256:${HEX.toUpperCase()}"`, 'lowercase'],
  [`nginx@sha256:${HEX.slice(1)}`, 'has 63'],
  [`nginx@sha512:${'f'.repeat(64)}`, '128 hex digits'],
  ['nginx@sha256', 'digest "sha256"'],
  ['nginx:1.0@', 'digest ""'],
  [`nginx@${D}@${D}`, `digest "${D}@${D}"`],
  [`nginx@9sha:${'a'.repeat(64)}`, 'algorithm "9sha"', 'not a valid algorithm name'],
  // Uppercase in the path (ErrNameContainsUppercase)
  ['Uppercase:tag', 'repository "Uppercase"', 'lowercase', '"uppercase"'],
  ['test:5000/Uppercase/lowercase:tag', 'repository "Uppercase/lowercase"', 'lowercase'],
  ['docker/Docker', 'repository "docker/Docker"', 'lowercase'],
  ['docker.io/docker/Docker', 'repository "docker/Docker"', 'lowercase'],
  // Path components
  [`${'a/'.repeat(128)}a:tag`, '257 characters', '255'],
  [
    `${'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_'.repeat(4)}x/docker`,
    'characters long',
    '255',
  ],
  ['aa/asdf$$^/aa', 'path component "asdf$$^"'],
  ['-docker', 'path component "-docker"'],
  ['-docker/docker', 'path component "-docker"'],
  ['docker-/docker', 'path component "docker-"'],
  ['-docker-/docker', 'path component "-docker-"'],
  ['____/____', 'path component "____"'],
  ['_docker/_docker', 'path component "_docker"'],
  // A '.' makes the first component a host (splitDockerDomain), so these fail as hosts
  ['dock..er/docker', 'registry host "dock..er"'],
  ['dock_.er/docker', 'registry host "dock_.er"'],
  ['docker/dock..er', 'path component "dock..er"'],
  ['dock-.er/docker', 'registry host "dock-.er"'],
  ['docker/dock-.er', 'path component "dock-.er"'],
  ['dock___er/docker', 'path component "dock___er"'],
  ['docker///docker', 'repository "docker///docker"', 'empty path component'],
  ['docker.io/docker///docker', 'repository "docker///docker"', 'empty path component'],
  ['docker/', 'repository "docker/"', 'empty path component'],
  ['/nginx', 'empty path component'],
  ['nginx a', 'path component "nginx a"'],
  [' nginx', 'path component " nginx"'],
  ['example.com/app:tag/x', 'path component "app:tag"'],
  [HEX, `"${HEX}"`, 'image ID'],
  // Registry hosts
  ['https://github.com/docker/docker', 'URL scheme "https://"'],
  ['-docker.io/docker/docker', 'registry host "-docker.io"'],
  ['foo_bar.com/x', 'registry host "foo_bar.com"'],
  ['registry.example.com:port/app', 'registry host "registry.example.com:port"'],
  ['fc00::1:5000/debian', 'registry host "fc00::1:5000"'],
  ['[fe80::1%eth0]:5000/debian', 'registry host "[fe80::1%eth0]:5000"'],
  ['[fe80::1%@invalidzone]:5000/repo', '[fe80::1%'],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', 'registry host "[2001:db8:3:4::192.0.2.33]:5000"'],
  // A bracketed host without a path is no host at all (reference_test.go)
  ['[2001:db8::1]', 'path component "[2001"'],
  ['[fc00::1]:5000', 'path component "[fc00"'],
  // Tags
  ['x:-bad', 'tag "-bad" in reference "x:-bad" is invalid', 'a tag starts with'],
  ['nginx:', 'tag ""'],
  ['nginx:.hidden', 'tag ".hidden"'],
  ['nginx:1.0:2.0', 'tag "1.0:2.0"'],
  [`nginx:${'t'.repeat(129)}`, `tag "${'t'.repeat(129)}"`, '128'],
  ['nginx:tag with space', 'tag "tag with space"'],
  ['a'.repeat(2100), '2100 characters'],
];

function expand([
  input,
  canonical,
  registry,
  repository,
  tag,
  digest,
]: (typeof valid)[number]): Valid {
  return { input, canonical, registry, repository, tag, digest };
}

describe('parseReference', () => {
  it('has at least 60 vectors', () => {
    expect(valid.length + invalid.length).toBeGreaterThanOrEqual(60);
  });

  it.each(valid.map(expand))('parses $input', (v) => {
    const ref = parseReference(v.input);
    expect(ref.registry).toBe(v.registry);
    expect(ref.repository).toBe(v.repository);
    expect(ref.tag).toBe(v.tag);
    expect(ref.digest).toBe(v.digest);
    expect(ref.canonical).toBe(v.canonical);
    expect(String(ref)).toBe(v.canonical);
    expect(ref.name).toBe(`${v.registry}/${v.repository}`);
    // Canonical strings are fixed points.
    expect(parseReference(ref.canonical).canonical).toBe(v.canonical);
    expect(parseReference(ref.familiar).canonical).toBe(v.canonical);
  });

  it.each(invalid)('refuses %j', (input, ...parts) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (error) {
      caught = error;
    }
    expect(isPrepullError(caught, 'ERR_IMAGE_REF_INVALID')).toBe(true);
    const message = (caught as Error).message;
    for (const part of parts) expect(message).toContain(part);
  });
});

describe('familiar form (normalize_test.go TestParseRepositoryInfo)', () => {
  it.each([
    ['docker.io/library/ubuntu', 'ubuntu:latest'],
    ['index.docker.io/library/ubuntu-12.04-base', 'ubuntu-12.04-base:latest'],
    ['docker.io/foo', 'foo:latest'],
    ['index.docker.io/fooo/bar', 'fooo/bar:latest'],
    ['docker.io/library/foo/bar', 'library/foo/bar:latest'],
    ['docker.io/store/foo/bar', 'store/foo/bar:latest'],
    ['127.0.0.1:8000/privatebase', '127.0.0.1:8000/privatebase:latest'],
    ['example.com/private/moonbase', 'example.com/private/moonbase:latest'],
    ['Foo/bar', 'Foo/bar:latest'],
    [`busybox:latest@${BUSYBOX}`, `busybox:latest@${BUSYBOX}`],
    [`docker.io/library/redis@${D}`, `redis@${D}`],
  ])('%s is %s', (input, familiar) => {
    expect(parseReference(input).familiar).toBe(familiar);
  });
});

describe('registry helpers', () => {
  it.each([
    ['nginx', 'registry-1.docker.io', 'library/nginx', 'latest'],
    ['index.docker.io/user/app:1', 'registry-1.docker.io', 'user/app', '1'],
    [`localhost:5000/app:v2@${D}`, 'localhost:5000', 'app', D],
    ['[::1]:5000/team/app', '[::1]:5000', 'team/app', 'latest'],
    [`quay.io/coreos/etcd@${S512}`, 'quay.io', 'coreos/etcd', S512],
  ])('%s → %s /v2/%s/manifests/%s', (input, host, path, manifestRef) => {
    const ref = parseReference(input);
    expect(registryApiHost(ref)).toBe(host);
    expect(repositoryPath(ref)).toBe(path);
    expect(referenceForManifest(ref)).toBe(manifestRef);
  });

  it.each([
    [D, true],
    [S384, true],
    [S512, true],
    [`sha256:${HEX.toUpperCase()}`, false],
    [`sha256:${HEX}0`, false],
    [`md5:${'a'.repeat(32)}`, false],
    [HEX, false],
    ['', false],
  ])('isValidDigest(%j) is %j', (value, expected) => {
    expect(isValidDigest(value)).toBe(expected);
  });

  it('freezes the reference', () => {
    const ref = parseReference('nginx');
    expect(Object.isFrozen(ref)).toBe(true);
    expect(JSON.parse(JSON.stringify(ref))).toEqual({
      registry: 'docker.io',
      repository: 'library/nginx',
      tag: 'latest',
      name: 'docker.io/library/nginx',
      canonical: 'docker.io/library/nginx:latest',
      familiar: 'nginx:latest',
    });
  });
});
