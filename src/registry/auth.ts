// Registry authentication: bearer tokens from the registry's token service (Docker's token
// spec: GET with Basic or anonymously, POST with a refresh token), cached per (registry, scope,
// credential) until just before they expire, one fetch shared by concurrent requests; Basic auth;
// and the request loop that answers a 401 once (its WWW-Authenticate read by challenge.ts).

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { type Clock, systemClock } from '../clock.ts';
import { PrepullError } from '../errors.ts';
import { describeAnswer, isObject, transientAnswerError } from './answers.ts';
import type { RegistryCredential } from '../image/credential.ts';
import {
  type BearerChallenge,
  bearerChallenge,
  type Challenge,
  usableChallenge,
} from './challenge.ts';
import {
  type Transport,
  type TransportRequest,
  type TransportResponse,
  abortError,
} from './transport.ts';

/** The token spec's default lifetime when the answer has no expires_in. */
export const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Tokens are renewed this long before they expire (at most a tenth of their lifetime). */
export const TOKEN_RENEW_MARGIN_MS = 10_000;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const MAX_CACHED_TOKENS = 512;
const CLIENT_ID = 'prepull';

/**
 * A stable identity for a credential, for cache keys: a hash of its secret parts, so that the
 * same secret read again shares tokens while the secret itself is never a key.
 */
export function credentialIdentity(credential: RegistryCredential | undefined): string {
  if (credential === undefined || !hasSecret(credential)) return 'anonymous';
  const parts = [
    credential.username ?? '',
    credential.password ?? '',
    credential.identityToken ?? '',
    credential.registryToken ?? '',
  ];
  return `credential:${createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32)}`;
}

function hasSecret(credential: RegistryCredential): boolean {
  return [
    credential.username,
    credential.password,
    credential.identityToken,
    credential.registryToken,
  ].some((v) => v !== undefined && v !== '');
}

function basicHeader(credential: RegistryCredential | undefined): string | undefined {
  if (credential === undefined) return undefined;
  const { username, password } = credential;
  if ((username ?? '') === '' && (password ?? '') === '') return undefined;
  return `Basic ${Buffer.from(`${username ?? ''}:${password ?? ''}`).toString('base64')}`;
}

/** Where a token is asked for and for whom. */
export interface TokenRequest {
  /** host[:port] of the registry the token is for, for the cache key and messages. */
  readonly registry: string;
  readonly challenge: BearerChallenge;
  /** "repository:<name>:pull". */
  readonly scope: string;
  readonly credential?: RegistryCredential | undefined;
  /** The registry's CA bundle: the token service is reached with the registry's trust. */
  readonly ca?: string | undefined;
  /** The registry itself is plain HTTP (configured insecure): a plain-HTTP realm is allowed. */
  readonly insecure?: boolean;
  readonly signal?: AbortSignal | undefined;
}

interface CachedToken {
  readonly token: string;
  /** When to stop using it: expiry minus the renew margin, on the injected clock. */
  readonly renewAt: number;
}

export interface TokenServiceOptions {
  readonly transport: Transport;
  readonly clock?: Clock;
}

/** Bearer tokens: fetched from the realm, cached until their renew time, fetches shared. */
export class TokenService {
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #cache = new Map<string, CachedToken>();
  readonly #inFlight = new Map<string, Promise<CachedToken>>();
  #fetches = 0;

  constructor(options: TokenServiceOptions) {
    this.#transport = options.transport;
    this.#clock = options.clock ?? systemClock;
  }

  /** Token fetches made so far (for tests and metrics). */
  get fetches(): number {
    return this.#fetches;
  }

  /** A cached token that is still good, without fetching. */
  cached(req: TokenRequest): string | undefined {
    const entry = this.#cache.get(cacheKey(req));
    return entry !== undefined && this.#clock.now() < entry.renewAt ? entry.token : undefined;
  }

  /** A good token: the cached one, the one being fetched, or a new fetch. */
  async token(req: TokenRequest): Promise<string> {
    const cached = this.cached(req);
    if (cached !== undefined) return cached;
    const key = cacheKey(req);
    let fetching = this.#inFlight.get(key);
    if (fetching === undefined) {
      // Shared, so it runs without any one caller's signal; each caller stops waiting on its own.
      // Stored before the in-flight entry goes, so no caller ever sees neither and fetches again.
      fetching = this.#fetch({ ...req, signal: undefined })
        .then((entry) => {
          this.#store(key, entry);
          return entry;
        })
        .finally(() => {
          this.#inFlight.delete(key);
        });
      this.#inFlight.set(key, fetching);
    }
    return (await raceSignal(fetching, req.signal, req.registry)).token;
  }

  /** Forgets `token` (only that one: a newer token fetched meanwhile stays). */
  invalidate(req: TokenRequest, token: string): void {
    const key = cacheKey(req);
    if (this.#cache.get(key)?.token === token) this.#cache.delete(key);
  }

  #store(key: string, entry: CachedToken): void {
    if (this.#cache.size >= MAX_CACHED_TOKENS) {
      const now = this.#clock.now();
      for (const [k, v] of this.#cache) if (v.renewAt <= now) this.#cache.delete(k);
      if (this.#cache.size >= MAX_CACHED_TOKENS) this.#cache.clear();
    }
    this.#cache.set(key, entry);
  }

  async #fetch(req: TokenRequest): Promise<CachedToken> {
    const { realm } = req.challenge;
    const credential =
      req.credential !== undefined && hasSecret(req.credential) ? req.credential : undefined;
    if (credential !== undefined && realm.protocol === 'http:' && req.insecure !== true) {
      throw new PrepullError(
        'ERR_REGISTRY_PROTOCOL',
        `${req.registry} sends clients to a plain-HTTP token service (${realm.host}); prepull will ` +
          'not send credentials over plain HTTP to a registry that is not configured as insecure.',
      );
    }
    const sentAt = this.#clock.now();
    this.#fetches++;
    const res = await this.#transport.send(tokenHttpRequest(req, credential));
    if (res.status !== 200) throw tokenStatusError(req, credential, res);
    return readTokenAnswer(req, res, sentAt);
  }
}

function cacheKey(req: TokenRequest): string {
  const { realm, service } = req.challenge;
  return [
    req.registry,
    realm.href,
    service ?? '',
    req.scope,
    credentialIdentity(req.credential),
  ].join('\n');
}

// Identity (refresh) tokens use the OAuth2 POST; everything else the token spec's GET, with
// Basic credentials when there are some (as the Docker CLI does), anonymously otherwise.
function tokenHttpRequest(
  req: TokenRequest,
  credential: RegistryCredential | undefined,
): TransportRequest {
  const { realm, service } = req.challenge;
  const common = {
    ca: req.ca,
    maxBodyBytes: MAX_TOKEN_RESPONSE_BYTES,
    signal: req.signal,
  };
  const identityToken = credential?.identityToken;
  if (identityToken !== undefined && identityToken !== '') {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: identityToken,
      client_id: CLIENT_ID,
    });
    if (service !== undefined) form.set('service', service);
    form.set('scope', req.scope);
    return {
      ...common,
      method: 'POST',
      url: realm,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    };
  }
  const url = new URL(realm);
  if (service !== undefined) url.searchParams.set('service', service);
  url.searchParams.append('scope', req.scope);
  const basic = basicHeader(credential);
  if (credential?.username !== undefined && credential.username !== '') {
    url.searchParams.set('account', credential.username);
  }
  return {
    ...common,
    method: 'GET',
    url,
    headers: basic === undefined ? {} : { authorization: basic },
  };
}

function tokenStatusError(
  req: TokenRequest,
  credential: RegistryCredential | undefined,
  res: TransportResponse,
): PrepullError {
  const what = `token service ${req.challenge.realm.host} for ${req.registry} (scope ${req.scope})`;
  const who = credential === undefined ? 'anonymous access' : `the ${String(credential)}`;
  const cause = new Error(describeAnswer(res));
  if (res.status === 401) {
    return new PrepullError(
      'ERR_REGISTRY_UNAUTHORIZED',
      `${what} refused ${who} (HTTP 401): ` +
        (credential === undefined
          ? 'the registry needs credentials; add a pull secret for it.'
          : 'check the username and password or token in that secret.'),
      { cause },
    );
  }
  if (res.status === 403) {
    return new PrepullError(
      'ERR_REGISTRY_FORBIDDEN',
      `${what} denied ${who} (HTTP 403): grant the account pull access or use credentials that have it.`,
      { cause },
    );
  }
  return (
    transientAnswerError(what, res) ??
    new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${what} answered ${describeAnswer(res)} instead of a token: check the registry's token service.`,
      { cause },
    )
  );
}

function readTokenAnswer(req: TokenRequest, res: TransportResponse, sentAt: number): CachedToken {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const token = isObject(parsed)
    ? (nonEmpty(parsed.token) ?? nonEmpty(parsed.access_token))
    : undefined;
  if (token === undefined || !isObject(parsed)) {
    throw new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `token service ${req.challenge.realm.host} for ${req.registry} answered without a token ` +
        '(expected JSON with "token" or "access_token").',
    );
  }
  const expiresIn = parsed.expires_in;
  const lifetimeS =
    typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0
      ? expiresIn
      : DEFAULT_TOKEN_LIFETIME_S;
  const lifetimeMs = lifetimeS * 1000;
  // Expiry counts from when we asked, on our clock: issued_at is the token service's clock, and
  // skew between the two would make a token look fresh after the registry stopped taking it.
  const margin = Math.min(TOKEN_RENEW_MARGIN_MS, lifetimeMs / 10);
  return { token, renewAt: sentAt + lifetimeMs - margin };
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

async function raceSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  what: string,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) throw abortError(signal, what, signal.reason);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(abortError(signal, what, signal.reason));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** Where requests go and how that registry is trusted. */
export interface AuthTarget {
  /** host[:port]. */
  readonly registry: string;
  /** Identifies the endpoint for remembering its challenge: origin plus any base path. */
  readonly key: string;
  readonly ca?: string | undefined;
  readonly insecure: boolean;
}

/** An answer and how the request was authorized, for the caller to explain a refusal. */
export interface AuthorizedResponse {
  readonly response: TransportResponse;
  /** The challenge of a final 401, if it had one prepull understands. */
  readonly challenge?: Challenge;
}

type Authorization =
  | {
      readonly kind: 'cached-token';
      readonly header: string;
      readonly token: string;
      readonly req: TokenRequest;
    }
  | { readonly kind: 'final'; readonly header: string };

/**
 * Sends registry requests with authorization: up front when the endpoint's challenge is known
 * (a cached token or Basic), otherwise after its first 401. A 401 is answered once: a cached
 * token that the registry refuses is dropped and fetched again; a fresh one refused is final.
 */
export class RegistryAuth {
  readonly #transport: Transport;
  readonly #tokens: TokenService;
  readonly #challenges = new Map<string, Challenge>();

  constructor(options: TokenServiceOptions) {
    this.#transport = options.transport;
    this.#tokens = new TokenService(options);
  }

  get tokens(): TokenService {
    return this.#tokens;
  }

  async send(
    target: AuthTarget,
    repository: string,
    credential: RegistryCredential | undefined,
    req: TransportRequest,
  ): Promise<AuthorizedResponse> {
    const ctx: AuthContext = {
      target,
      scope: `repository:${repository}:pull`,
      credential,
      signal: req.signal,
    };
    const known = this.#challenges.get(target.key);
    const first = known === undefined ? undefined : await this.#authorize(ctx, known, true);
    const response = await this.#transport.send(withAuthorization(req, first?.header));
    if (response.status !== 401) return { response };

    const challenge = usableChallenge(response);
    if (challenge === undefined) return { response };
    this.#challenges.set(target.key, challenge);
    if (first?.kind === 'cached-token') this.#tokens.invalidate(first.req, first.token);
    // A fresh answer to the challenge we knew was refused: final. If the registry now asks
    // differently (reconfigured from Basic to tokens, a new realm), answer that once.
    else if (first !== undefined && known !== undefined && sameChallenge(known, challenge)) {
      return { response, challenge };
    }

    const second = await this.#authorize(ctx, challenge, false);
    if (second === undefined) return { response, challenge };
    const retried = await this.#transport.send(withAuthorization(req, second.header));
    if (retried.status !== 401) return { response: retried };
    const final = usableChallenge(retried);
    return final === undefined ? { response: retried } : { response: retried, challenge: final };
  }

  // Up front (`upFront`), a cached token is used and may turn out refused; after a 401 the
  // token comes from the token service (or a fetch that finished meanwhile).
  async #authorize(
    ctx: AuthContext,
    challenge: Challenge,
    upFront: boolean,
  ): Promise<Authorization | undefined> {
    const { target, credential } = ctx;
    if (challenge.scheme === 'basic') {
      const header = basicHeader(credential);
      return header === undefined ? undefined : { kind: 'final', header };
    }
    if (challenge.scheme !== 'bearer') return undefined;
    const registryToken = credential?.registryToken;
    if (registryToken !== undefined && registryToken !== '') {
      return { kind: 'final', header: `Bearer ${registryToken}` };
    }
    const tokenReq: TokenRequest = {
      registry: target.registry,
      challenge: bearerChallenge(challenge, target.registry),
      scope: ctx.scope,
      credential,
      ca: target.ca,
      insecure: target.insecure,
      signal: ctx.signal,
    };
    const cached = upFront ? this.#tokens.cached(tokenReq) : undefined;
    if (cached !== undefined) {
      return { kind: 'cached-token', header: `Bearer ${cached}`, token: cached, req: tokenReq };
    }
    // Fetched now, or by a concurrent request moments ago: the newest token there is, so a
    // refusal of it is final.
    const token = await this.#tokens.token(tokenReq);
    return { kind: 'final', header: `Bearer ${token}` };
  }
}

interface AuthContext {
  readonly target: AuthTarget;
  readonly scope: string;
  readonly credential: RegistryCredential | undefined;
  readonly signal: AbortSignal | undefined;
}

function sameChallenge(a: Challenge, b: Challenge): boolean {
  return (
    a.scheme === b.scheme &&
    a.params.realm === b.params.realm &&
    a.params.service === b.params.service
  );
}

function withAuthorization(req: TransportRequest, header: string | undefined): TransportRequest {
  return header === undefined
    ? req
    : { ...req, headers: { ...req.headers, authorization: header } };
}
