// Image references: parse and normalise them exactly as the Docker reference grammar does
// (distribution/reference ParseNormalizedNamed), so that "nginx" here means what it means to
// kubelet, containerd and the registry: docker.io/library/nginx:latest.

import { PrepullError } from '../errors.ts';

export interface ImageReference {
  /** Registry host with optional port, as written: 'docker.io', '127.0.0.1:5000', '[::1]:5000'. */
  readonly registry: string;
  /** Repository path inside the registry: 'library/nginx'. */
  readonly repository: string;
  /** 'latest' when the reference has neither tag nor digest. */
  readonly tag?: string;
  /** 'sha256:<64 hex>' (or sha384/sha512). */
  readonly digest?: string;
  /** registry/repository, without tag or digest. */
  readonly name: string;
  /** registry/repository[:tag][@digest]: the one spelling every part of prepull uses. */
  readonly canonical: string;
  /** The short form people type and `docker images` shows: 'nginx:latest', 'user/app:1'. */
  readonly familiar: string;
  /** The canonical string, so a reference reads well in messages. */
  toString(): string;
}

export const DOCKER_HUB_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** RepositoryNameTotalLengthMax upstream: applies to the repository path, not the host. */
export const REPOSITORY_MAX_LENGTH = 255;

const LEGACY_DOCKER_HUB = 'index.docker.io';
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const OFFICIAL_PREFIX = 'library/';

// Upstream has no overall limit, but its domain pattern backtracks on long inputs; no valid
// reference comes near this (host ≤ 253 + path 255 + tag 128 + sha512 digest 135).
export const MAX_REFERENCE_LENGTH = 2048;

// Patterns from distribution/reference regexp.go, anchored. JavaScript's \w is ASCII-only,
// like RE2's.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6_HOST = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN_AND_PORT = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|${IPV6_HOST})(?::[0-9]+)?$`,
);
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST_ALGORITHM = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*$/;
const IDENTIFIER = /^[a-f0-9]{64}$/;
const LOWER_HEX = /^[a-f0-9]+$/;
const URL_SCHEME = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//;

/** Algorithms go-digest registers, with the length of their hex encoding. */
export const DIGEST_HEX_LENGTHS: Readonly<Record<string, number>> = {
  sha256: 64,
  sha384: 96,
  sha512: 128,
};

const TAG_RULE =
  'a tag starts with a letter, digit or underscore and has at most 128 letters, digits, ' +
  'underscores, periods and dashes';
const COMPONENT_RULE =
  'path components are lowercase letters and digits, start and end with one, and are ' +
  'separated inside only by ".", "_", "__" or dashes';
const HOST_RULE =
  'a registry host is a DNS name or IPv4 address (letters, digits, dashes, dots) or an IPv6 ' +
  'address in brackets, optionally followed by ":" and a numeric port';

/** Parses an image reference; throws PrepullError ERR_IMAGE_REF_INVALID naming the bad part. */
export function parseReference(input: string): ImageReference {
  checkWhole(input);
  const at = input.indexOf('@');
  const namePart = at === -1 ? input : input.slice(0, at);
  const digest = at === -1 ? undefined : input.slice(at + 1);
  // The tag separator is the first ':' after the last '/': a ':' before it belongs to a port.
  const colon = namePart.indexOf(':', namePart.lastIndexOf('/') + 1);
  const name = colon === -1 ? namePart : namePart.slice(0, colon);
  const tag = colon === -1 ? undefined : namePart.slice(colon + 1);

  const { registry, repository, written } = splitRegistry(name, input);
  checkRegistry(registry, input);
  checkRepository(repository, written, input);
  if (tag !== undefined && !TAG.test(tag)) {
    throw invalid(`tag ${quote(tag)} in reference ${quote(input)} is invalid: ${TAG_RULE}`);
  }
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) {
      throw invalid(`digest ${quote(digest)} in reference ${quote(input)} ${problem}`);
    }
  }
  return makeReference(
    registry,
    repository,
    tag ?? (digest === undefined ? DEFAULT_TAG : undefined),
    digest,
  );
}

/** The host that serves the registry API: Docker Hub's API is not at docker.io itself. */
export function registryApiHost(ref: Pick<ImageReference, 'registry'>): string {
  return ref.registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_API_HOST : ref.registry;
}

/** The <name> in /v2/<name>/manifests/<reference>. */
export function repositoryPath(ref: Pick<ImageReference, 'repository'>): string {
  return ref.repository;
}

/** The <reference> in /v2/<name>/manifests/<reference>: a digest pins content, so it wins. */
export function referenceForManifest(ref: Pick<ImageReference, 'tag' | 'digest'>): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** True for a digest go-digest would accept: known algorithm, right length, lowercase hex. */
export function isValidDigest(value: string): boolean {
  return digestProblem(value) === undefined;
}

function checkWhole(input: string): void {
  if (input === '') {
    throw invalid(
      'image reference is empty: give one such as "nginx:1.27" or ' +
        '"registry.example.com/team/app@sha256:<64 hex digits>"',
    );
  }
  if (input.length > MAX_REFERENCE_LENGTH) {
    throw invalid(
      `image reference ${quote(input)} is ${input.length} characters long; ` +
        `references are at most ${MAX_REFERENCE_LENGTH}`,
    );
  }
  if (IDENTIFIER.test(input)) {
    throw invalid(
      `image reference ${quote(input)} is a 64-character hexadecimal string, which is an image ID, ` +
        'not a repository name: use the repository name, or name@sha256:<hex> to pin a digest',
    );
  }
  const scheme = URL_SCHEME.exec(input);
  if (scheme !== null) {
    throw invalid(
      `image reference ${quote(input)} starts with the URL scheme ${quote(scheme[0])}: ` +
        'references have no scheme; write host/path:tag',
    );
  }
}

// splitDockerDomain from normalize.go: the first component is a host only when it looks like
// one, so "user/app" stays on Docker Hub while "registry.local/app" and "Host/app" do not.
function splitRegistry(
  name: string,
  input: string,
): { registry: string; repository: string; written: string } {
  if (name === '') {
    throw invalid(
      `image reference ${quote(input)} has no repository name before its tag or digest`,
    );
  }
  const slash = name.indexOf('/');
  let registry = DOCKER_HUB_REGISTRY;
  let written = name;
  if (slash !== -1) {
    const first = name.slice(0, slash);
    if (first === LEGACY_DOCKER_HUB) {
      written = name.slice(slash + 1);
    } else if (looksLikeHost(first)) {
      registry = first;
      written = name.slice(slash + 1);
    }
  }
  const official = registry === DOCKER_HUB_REGISTRY && !written.includes('/');
  return { registry, repository: official ? OFFICIAL_PREFIX + written : written, written };
}

function looksLikeHost(component: string): boolean {
  return (
    component === 'localhost' ||
    component.includes('.') ||
    component.includes(':') ||
    component.toLowerCase() !== component
  );
}

function checkRegistry(registry: string, input: string): void {
  if (!DOMAIN_AND_PORT.test(registry)) {
    throw invalid(
      `registry host ${quote(registry)} in reference ${quote(input)} is invalid: ${HOST_RULE}`,
    );
  }
}

function checkRepository(repository: string, written: string, input: string): void {
  const where = `repository ${quote(written)} in reference ${quote(input)}`;
  if (written.toLowerCase() !== written) {
    throw invalid(`${where} must be lowercase: write ${quote(written.toLowerCase())}`);
  }
  for (const component of written.split('/')) {
    if (component === '') {
      throw invalid(`${where} has an empty path component (a leading, trailing or double "/")`);
    }
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(`path component ${quote(component)} of ${where} is invalid: ${COMPONENT_RULE}`);
    }
  }
  if (repository.length > REPOSITORY_MAX_LENGTH) {
    throw invalid(
      `${where} is ${repository.length} characters long; ` +
        `the limit is ${REPOSITORY_MAX_LENGTH}`,
    );
  }
}

// go-digest Digest.Validate: the checks and their order.
function digestProblem(digest: string): string | undefined {
  const sep = digest.indexOf(':');
  if (sep <= 0 || sep === digest.length - 1) {
    return 'is invalid: a digest is "<algorithm>:<hex>", such as "sha256:" and 64 hex digits';
  }
  const algorithm = digest.slice(0, sep);
  const encoded = digest.slice(sep + 1);
  const expected = DIGEST_HEX_LENGTHS[algorithm];
  if (expected === undefined) {
    return DIGEST_ALGORITHM.test(algorithm)
      ? `uses the unsupported algorithm ${quote(algorithm)}: use sha256, sha384 or sha512`
      : `is invalid: the algorithm ${quote(algorithm)} is not a valid algorithm name`;
  }
  if (encoded.length !== expected) {
    return (
      `is invalid: a ${algorithm} digest has ${expected} hex digits, ` +
      `this one has ${encoded.length}`
    );
  }
  if (!LOWER_HEX.test(encoded)) {
    return `is invalid: a ${algorithm} digest is written in lowercase hex digits (0-9, a-f)`;
  }
  return undefined;
}

function makeReference(
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
): ImageReference {
  const suffix = (tag === undefined ? '' : `:${tag}`) + (digest === undefined ? '' : `@${digest}`);
  const name = `${registry}/${repository}`;
  const canonical = name + suffix;
  return Object.freeze({
    registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
    name,
    canonical,
    familiar: familiarName(registry, repository) + suffix,
    toString: () => canonical,
  });
}

// familiarizeName from normalize.go: only a single-level library/ repository is shortened.
function familiarName(registry: string, repository: string): string {
  if (registry !== DOCKER_HUB_REGISTRY) {
    return `${registry}/${repository}`;
  }
  const rest = repository.slice(OFFICIAL_PREFIX.length);
  return repository.startsWith(OFFICIAL_PREFIX) && !rest.includes('/') ? rest : repository;
}

function quote(value: string): string {
  const shown = value.length > 300 ? `${value.slice(0, 300)}…` : value;
  return JSON.stringify(shown);
}

function invalid(message: string): PrepullError {
  return new PrepullError('ERR_IMAGE_REF_INVALID', message);
}
