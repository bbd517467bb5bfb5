// Registry credentials: read them from the places Kubernetes and Docker keep them, and pick the
// ones that apply to an image the way kubelet's keyring does (pkg/credentialprovider keyring.go
// and config.go), so prepull pulls with the credentials kubelet would use. The two places where
// prepull differs on purpose are in ADR 0017. A credential object never prints, serialises or
// inspects to its secrets.

import { Buffer } from 'node:buffer';
import { PrepullError } from '../errors.ts';
import type { ImageReference } from '../image/reference.ts';
import { REDACTED, RegistryCredential } from '../image/credential.ts';

/**
 * A registry key made ready for matching, as kubelet's BasicDockerKeyring.Add leaves it: the
 * scheme and user info gone, a leading /v1/ or /v2/ dropped, nothing else changed.
 */
export interface RegistryKeyPattern {
  /** The host as written (case kept: kubelet matches case-sensitively); may hold glob characters. */
  readonly host: string;
  readonly port: string;
  /** '' or a path starting with '/', with a leading /v1 or /v2 removed. */
  readonly path: string;
}

export interface CredentialEntry {
  readonly key: string;
  readonly pattern: RegistryKeyPattern;
  readonly credential: RegistryCredential;
}

export interface CredentialSource {
  readonly name: string;
  /** In the order the source lists them. */
  readonly entries: readonly CredentialEntry[];
  /** Keys that name no host; kubelet ignores them too. Worth a warning, never an error. */
  readonly ignoredKeys: readonly string[];
}

/** Anything that answers "which credentials may pull this image", best first. */
export interface CredentialLookup {
  lookup(ref: Pick<ImageReference, 'registry' | 'repository'>): RegistryCredential[];
}

/** A Kubernetes Secret as the API returns it: data values are base64. */
export interface ImagePullSecret {
  readonly namespace: string;
  readonly name: string;
  readonly type?: string | undefined;
  readonly data?: Readonly<Record<string, string>> | undefined;
}

export const SECRET_TYPE_DOCKER_CONFIG_JSON = 'kubernetes.io/dockerconfigjson';
export const SECRET_TYPE_DOCKERCFG = 'kubernetes.io/dockercfg';

// Images on Docker Hub are looked up as "docker.io/<repository>" (kubelet's ParseImageName),
// which only keys for docker.io itself match; a key for the old index is the fallback.
const DOCKER_HUB = 'docker.io';
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const DOCKER_HUB_INDEX = 'index.docker.io';
const IPV6_LITERAL = /^\[[0-9a-fA-F:.]+\]$/;

const DOCKERCONFIGJSON_SHAPE =
  'a kubernetes.io/dockerconfigjson secret holds {"auths": {"<registry>": {"auth": "<base64 of username:password>"}}}';
const DOCKERCFG_SHAPE =
  'a kubernetes.io/dockercfg secret holds {"<registry>": {"auth": "<base64 of username:password>"}}';
const CONFIG_FILE_SHAPE =
  'a Docker config.json holds {"auths": {"<registry>": {"auth": "<base64 of username:password>"}}}';

/**
 * The `.dockerconfigjson` of a kubernetes.io/dockerconfigjson secret: {"auths": {...}}. As in
 * kubelet, "identitytoken" and "registrytoken" are dropped (see readEntry).
 */
export function parseDockerConfigJson(text: string, source: string): CredentialSource {
  const root = parseObject(text, source, DOCKERCONFIGJSON_SHAPE);
  const auths = field(root, 'auths');
  if (auths === undefined) {
    throw invalid(
      `credentials in ${source} have no "auths" object (is it in the older .dockercfg format?): ` +
        DOCKERCONFIGJSON_SHAPE,
    );
  }
  return readAuths(auths, source, DOCKERCONFIGJSON_SHAPE, false);
}

/** The `.dockercfg` of a kubernetes.io/dockercfg secret: the registry map itself. */
export function parseDockercfg(text: string, source: string): CredentialSource {
  return readAuths(parseObject(text, source, DOCKERCFG_SHAPE), source, DOCKERCFG_SHAPE, false);
}

/**
 * A Docker CLI config.json, as `--docker-config` gives it to sync and audit. Only "auths" is
 * read: credential helpers (credsStore, credHelpers) run programs, which an agent on every node
 * must not do, so a file with only those is empty. Unlike kubelet (and unlike pull secrets
 * here), "identitytoken" and "registrytoken" are kept: the operator named this file, and the
 * runtimes honour them (ADR 0017).
 */
export function parseDockerConfigFile(text: string, source: string): CredentialSource {
  const auths = field(parseObject(text, source, CONFIG_FILE_SHAPE), 'auths');
  return auths === undefined
    ? { name: source, entries: [], ignoredKeys: [] }
    : readAuths(auths, source, CONFIG_FILE_SHAPE, true);
}

/** An image pull secret, decoded by its type as kubelet's MakeDockerKeyring does. */
export function parseImagePullSecret(secret: ImagePullSecret): CredentialSource {
  const source = `secret ${secret.namespace}/${secret.name}`;
  const dataKey =
    secret.type === SECRET_TYPE_DOCKER_CONFIG_JSON
      ? '.dockerconfigjson'
      : secret.type === SECRET_TYPE_DOCKERCFG
        ? '.dockercfg'
        : undefined;
  if (dataKey === undefined) {
    throw invalid(
      `${source} has type ${JSON.stringify(secret.type ?? '')}; image pull secrets must have type ` +
        `${SECRET_TYPE_DOCKER_CONFIG_JSON} (or the older ${SECRET_TYPE_DOCKERCFG})`,
    );
  }
  const encoded = secret.data?.[dataKey];
  if (encoded === undefined || encoded === '') {
    throw invalid(
      `${source} has no ${dataKey} data: recreate it with kubectl create secret docker-registry`,
    );
  }
  const decoded = decodeBase64(encoded);
  if (decoded === undefined) {
    throw invalid(`${source} has ${dataKey} data that is not valid base64`);
  }
  const text = decoded.toString('utf8');
  return dataKey === '.dockerconfigjson'
    ? parseDockerConfigJson(text, source)
    : parseDockercfg(text, source);
}

/**
 * kubelet's URLsMatchStr after Add's normalisation (keyring.go): does the credential filed under
 * `key` apply to `image`, a schemeless "host[:port][/path]" such as "quay.io/coreos/etcd"? Only
 * the match itself: the Docker Hub fallback is the Keyring's.
 */
export function registryKeyMatches(key: string, image: string): boolean {
  const pattern = parseRegistryKey(key);
  const target = splitLocation(image, false);
  return pattern !== undefined && target !== undefined && patternMatches(pattern, target);
}

/**
 * Keys may be URLs ("https://quay.io/v1/") or bare "host[:port][/path]"; /v1 and /v2 mean the
 * registry itself. Returns undefined for a key with no host, which can match nothing. As in
 * kubelet's Add, only a lowercase "http://" or "https://" is a scheme, and the host keeps its
 * case.
 */
export function parseRegistryKey(key: string): RegistryKeyPattern | undefined {
  return splitLocation(key.replace(/^https?:\/\//, ''), true);
}

/**
 * kubelet's BasicDockerKeyring over several sources (a PrePull's pull secrets), keyring.go's
 * Add and Lookup:
 *
 * - every entry whose key matches the image, in the reverse string order of the keys (Add's
 *   `sort.Sort(sort.Reverse(...))`: "quay.io/team" before "quay.io"), entries filed under the
 *   same key in source order;
 * - only when none matched and the image is on Docker Hub, the entries filed under
 *   "index.docker.io" itself ("https://index.docker.io/v1/", Docker's own spelling of Hub).
 *
 * kubelet's fallback also covers "localhost/…" images, whose first component has no "." or ":"
 * (isDefaultRegistryMatch); prepull never sends Docker Hub's credentials to another registry
 * (ADR 0017).
 */
export class Keyring implements CredentialLookup {
  readonly #entries: readonly CredentialEntry[];
  readonly #hubIndex: readonly CredentialEntry[];

  constructor(sources: readonly CredentialSource[]) {
    const entries = sources.flatMap((source) => source.entries);
    this.#entries = [...entries].sort(byKeyDescending);
    this.#hubIndex = entries.filter(({ pattern }) => isHubIndexKey(pattern));
  }

  lookup(ref: Pick<ImageReference, 'registry' | 'repository'>): RegistryCredential[] {
    const target = splitLocation(`${ref.registry}/${ref.repository}`, false);
    if (target === undefined) return [];
    const matched = this.#entries.filter((entry) => patternMatches(entry.pattern, target));
    const chosen = matched.length === 0 && ref.registry === DOCKER_HUB ? this.#hubIndex : matched;
    return chosen.map((entry) => entry.credential);
  }
}

/**
 * kubelet's unionDockerKeyring: each lookup in order, results concatenated — for example the
 * PrePull's pull secrets first, then the node's own config.json.
 */
export class CredentialChain implements CredentialLookup {
  readonly #lookups: readonly CredentialLookup[];

  constructor(lookups: readonly CredentialLookup[]) {
    this.#lookups = [...lookups];
  }

  lookup(ref: Pick<ImageReference, 'registry' | 'repository'>): RegistryCredential[] {
    return this.#lookups.flatMap((lookup) => lookup.lookup(ref));
  }
}

interface Location {
  readonly host: string;
  readonly port: string;
  readonly path: string;
}

function splitLocation(value: string, isKey: boolean): Location | undefined {
  const withoutQuery = value.replace(/[?#].*$/s, '');
  const slash = withoutQuery.indexOf('/');
  const authority = slash === -1 ? withoutQuery : withoutQuery.slice(0, slash);
  let path = slash === -1 ? '' : withoutQuery.slice(slash);
  // Go's url.Parse drops user info; it is no part of the registry's name. It keeps the host's
  // case, and so does kubelet's match (filepath.Match is case-sensitive).
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
  const [host, port] = splitHostPort(hostPort);
  if (host === '' || /\s/.test(host)) return undefined;
  if (isKey && (path.startsWith('/v1/') || path.startsWith('/v2/'))) path = path.slice(3);
  if (isKey && path === '/') path = '';
  return { host, port, path };
}

// net.SplitHostPort, falling back as kubelet's splitURL does: no port when it cannot split.
function splitHostPort(hostPort: string): [string, string] {
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    const rest = close === -1 ? '' : hostPort.slice(close + 1);
    return close !== -1 && rest.startsWith(':')
      ? [hostPort.slice(0, close + 1), rest.slice(1)]
      : [hostPort, ''];
  }
  const colon = hostPort.indexOf(':');
  if (colon === -1 || hostPort.slice(colon + 1).includes(':')) return [hostPort, ''];
  return [hostPort.slice(0, colon), hostPort.slice(colon + 1)];
}

function patternMatches(pattern: Location, target: Location): boolean {
  return (
    pattern.port === target.port &&
    target.path.startsWith(pattern.path) &&
    hostMatches(pattern.host, target.host)
  );
}

// URLsMatch: the same number of dot-separated labels, each glob-matched. Bracketed IPv6 hosts
// compare literally: as a glob, "[::1]" would be a character class.
function hostMatches(glob: string, host: string): boolean {
  if (IPV6_LITERAL.test(glob) || IPV6_LITERAL.test(host)) return glob === host;
  const globLabels = glob.split('.');
  const hostLabels = host.split('.');
  return (
    globLabels.length === hostLabels.length &&
    globLabels.every((label, i) => globMatch(label, hostLabels[i] ?? ''))
  );
}

// kubelet's index order: the keys (host[:port][path]) in reverse byte order, which puts a
// longer path before its prefix. Equal keys keep source order (sort is stable), as kubelet
// appends them under one key.
function byKeyDescending(a: CredentialEntry, b: CredentialEntry): number {
  // Go compares strings byte by byte: compare the UTF-8, not UTF-16 code units.
  return Buffer.compare(Buffer.from(patternKey(b.pattern)), Buffer.from(patternKey(a.pattern)));
}

// Lookup's fallback reads creds["index.docker.io"]: the key exactly, no port, no path.
function isHubIndexKey(pattern: RegistryKeyPattern): boolean {
  return pattern.host === DOCKER_HUB_INDEX && pattern.port === '' && pattern.path === '';
}

function patternKey(pattern: RegistryKeyPattern): string {
  return pattern.host + (pattern.port === '' ? '' : `:${pattern.port}`) + pattern.path;
}

type GlobToken =
  { readonly kind: 'star' } | { readonly kind: 'char'; readonly test: (c: string) => boolean };

/** Go's path/filepath.Match for one host label: *, ?, [classes] and \ escapes. */
export function globMatch(pattern: string, text: string): boolean {
  const tokens = tokenizeGlob(Array.from(pattern));
  if (tokens === undefined) return false; // ErrBadPattern: kubelet treats it as no match
  const chars = Array.from(text);
  let t = 0;
  let s = 0;
  let starT = -1;
  let starS = 0;
  while (s < chars.length) {
    const token = tokens[t];
    if (token?.kind === 'star') {
      starT = t++;
      starS = s;
    } else if (token?.test(chars[s] ?? '') === true) {
      t++;
      s++;
    } else if (starT !== -1) {
      t = starT + 1;
      s = ++starS;
    } else {
      return false;
    }
  }
  return tokens.slice(t).every((token) => token.kind === 'star');
}

function tokenizeGlob(p: readonly string[]): GlobToken[] | undefined {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p[i] ?? '';
    if (c === '*') {
      tokens.push({ kind: 'star' });
    } else if (c === '?') {
      tokens.push({ kind: 'char', test: () => true });
    } else if (c === '[') {
      const parsed = readClass(p, i + 1);
      if (parsed === undefined) return undefined;
      tokens.push({ kind: 'char', test: parsed.test });
      i = parsed.end;
    } else {
      const literal = c === '\\' ? p[++i] : c;
      if (literal === undefined) return undefined;
      tokens.push({ kind: 'char', test: (x) => x === literal });
    }
  }
  return tokens;
}

function readClass(
  p: readonly string[],
  start: number,
): { test: (c: string) => boolean; end: number } | undefined {
  let i = start;
  const negate = p[i] === '^';
  if (negate) i++;
  const ranges: [string, string][] = [];
  while (i < p.length) {
    if (p[i] === ']' && ranges.length > 0) {
      const inClass = (c: string): boolean => ranges.some(([lo, hi]) => lo <= c && c <= hi);
      return { test: (c) => inClass(c) !== negate, end: i };
    }
    const lo = readClassChar(p, i);
    if (lo === undefined) return undefined;
    let hi = lo;
    if (p[lo.next] === '-') {
      hi = readClassChar(p, lo.next + 1) ?? { char: '', next: -1 };
      if (hi.next === -1) return undefined;
    }
    ranges.push([lo.char, hi.char]);
    i = hi.next;
  }
  return undefined;
}

function readClassChar(
  p: readonly string[],
  i: number,
): { char: string; next: number } | undefined {
  const c = p[i];
  if (c === undefined || c === '-' || c === ']') return undefined;
  if (c !== '\\') return { char: c, next: i + 1 };
  const escaped = p[i + 1];
  return escaped === undefined ? undefined : { char: escaped, next: i + 2 };
}

function readAuths(
  auths: unknown,
  source: string,
  shape: string,
  tokens: boolean,
): CredentialSource {
  if (!isObject(auths)) {
    throw invalid(`credentials in ${source} are not a map of registries to credentials: ${shape}`);
  }
  const entries: CredentialEntry[] = [];
  const ignoredKeys: string[] = [];
  for (const [rawKey, value] of Object.entries(auths)) {
    const key = withoutUserinfo(rawKey);
    const credential = readEntry(value, key, source, tokens);
    const pattern = parseRegistryKey(rawKey);
    if (pattern === undefined) ignoredKeys.push(key);
    else entries.push({ key, pattern, credential });
  }
  return { name: source, entries, ignoredKeys };
}

// config.go's DockerConfigEntry.UnmarshalJSON: "auth" wins over username/password, as in the
// Docker CLI. DockerConfigEntry has no identitytoken or registrytoken, so kubelet's keyring never
// passes them on (nor minds their type): unless `tokens`, they are not read at all.
function readEntry(
  value: unknown,
  key: string,
  source: string,
  tokens: boolean,
): RegistryCredential {
  const where = `credentials in ${source} for ${quoteKey(key)}`;
  if (value === null) return new RegistryCredential({ source, key });
  if (!isObject(value)) {
    throw invalid(`${where} are not an object: give {"auth": "<base64 of username:password>"}`);
  }
  const text = (name: string): string | undefined => stringField(value, name, where);
  text('email'); // unused, but a non-string is as malformed to kubelet as any other field
  let username = text('username');
  let password = text('password');
  const auth = text('auth');
  if (auth !== undefined && auth !== '') {
    [username, password] = decodeAuth(auth, where);
  }
  return new RegistryCredential({
    source,
    key,
    username,
    password,
    ...(tokens
      ? { identityToken: text('identitytoken'), registryToken: text('registrytoken') }
      : {}),
  });
}

function decodeAuth(auth: string, where: string): [string, string] {
  const decoded = decodeBase64(auth);
  if (decoded === undefined) {
    throw invalid(
      `${where}: the "auth" field is not valid base64; it must be base64 of "username:password"`,
    );
  }
  // Buffer's toString would put U+FFFD for bytes that are not UTF-8, silently changing the
  // password; kubelet passes the bytes on as they are, which no runtime's API (protobuf strings,
  // JSON) can carry unchanged. Refuse it, saying where, never what.
  let text: string;
  try {
    text = UTF8.decode(decoded);
  } catch {
    throw invalid(
      `${where}: the "auth" field decodes to bytes that are not UTF-8 text; it must be base64 ` +
        'of "username:password" written in UTF-8',
    );
  }
  const colon = text.indexOf(':');
  if (colon === -1) {
    throw invalid(
      `${where}: the "auth" field decodes to text without ":"; it must be base64 of "username:password"`,
    );
  }
  return [text.slice(0, colon), text.slice(colon + 1)];
}

// Go's StdEncoding when padded, RawStdEncoding when not (config.go decides by the trailing
// "="); both skip CR and LF and refuse anything else outside the alphabet, unlike Buffer.
function decodeBase64(value: string): Buffer | undefined {
  const padded = value.trim().endsWith('=');
  const body = value.replace(/[\r\n]/g, '');
  const valid = padded
    ? /^[A-Za-z0-9+/]*={1,2}$/.test(body) && body.length % 4 === 0
    : /^[A-Za-z0-9+/]*$/.test(body) && body.length % 4 !== 1;
  return valid ? Buffer.from(body, 'base64') : undefined;
}

function parseObject(text: string, source: string, shape: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text around the fault, which may be a password: keep only the
    // position, and do not attach the SyntaxError as cause.
    const position = error instanceof Error ? /position (\d+)/.exec(error.message)?.[1] : undefined;
    const at = position === undefined ? '' : ` (at character ${position})`;
    throw invalid(`credentials in ${source} are not valid JSON${at}: ${shape}`);
  }
  if (!isObject(parsed)) {
    throw invalid(`credentials in ${source} are not a JSON object: ${shape}`);
  }
  return parsed;
}

// encoding/json matches field names exactly first, then case-insensitively.
function field(object: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(object, name)) return object[name];
  const key = Object.keys(object).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : object[key];
}

function stringField(
  object: Record<string, unknown>,
  name: string,
  where: string,
): string | undefined {
  const value = field(object, name);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    const kind = Array.isArray(value)
      ? 'an array'
      : typeof value === 'object'
        ? 'an object'
        : `a ${typeof value}`;
    throw invalid(`${where}: the ${JSON.stringify(name)} field is ${kind}; it must be a string`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// A key written as a URL may carry "user:password@"; the key is shown in messages and logs.
function withoutUserinfo(key: string): string {
  return key.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*@/i, `$1${REDACTED}@`);
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}…` : key);
}

function invalid(message: string): PrepullError {
  return new PrepullError('ERR_CREDENTIALS_INVALID', message);
}
