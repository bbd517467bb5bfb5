// The registry client: resolves an image reference to the digest the registry serves for it,
// with a manifest HEAD (no blob is ever fetched), through mirrors, credentials tried as kubelet
// tries them, and every registry answer turned into a coded error a person can act on.

import { isPrepullError, PrepullError } from '../errors.ts';
import {
  describeAnswer,
  hasErrorCode,
  transientAnswerError,
  unexpectedAnswerError,
} from './answers.ts';
import { type AuthorizedResponse, RegistryAuth } from './auth.ts';
import type { CredentialLookup } from './credentials.ts';
import type { RegistryCredential } from '../image/credential.ts';
import {
  bareMediaType,
  digestAlgorithm,
  digestOf,
  indexPlatforms,
  isIndexMediaType,
  isManifestMediaType,
  MANIFEST_ACCEPT,
  mediaTypeOfBody,
  type PlatformManifest,
  verifyDigest,
} from './manifest.ts';
import {
  combineFailures,
  describeEndpoint,
  type Endpoint,
  type EndpointFailure,
  endpointsFor,
  type MirrorConfig,
  type RegistryHostsConfig,
  triesNextEndpoint,
  validateMirrorConfig,
} from './mirrors.ts';
import {
  type ImageReference,
  isValidDigest,
  parseReference,
  referenceForManifest,
} from '../image/reference.ts';
import {
  headerValue,
  Transport,
  type TransportOptions,
  type TransportResponse,
} from './transport.ts';

export type { PlatformManifest } from './manifest.ts';

export interface ResolveOptions {
  /**
   * Credentials that apply to the image, best first (a Keyring's lookup result), or a lookup to
   * ask per endpoint. A list is sent only to the image's own registry; mirrors get credentials
   * only from a lookup, for their own host. Empty or absent: anonymous.
   */
  readonly credentials?: readonly RegistryCredential[] | CredentialLookup;
  /** For an index, list its per-platform manifests (one GET of the index, by digest). */
  readonly platforms?: boolean;
  readonly signal?: AbortSignal;
  /** At most this many attempts per request (1: a probe that never waits for a retry). */
  readonly maxAttempts?: number;
}

export interface ResolvedImage {
  /** The digest of the manifest (or index) the reference names. */
  readonly digest: string;
  readonly mediaType: string;
  /** Size of that manifest in bytes. */
  readonly size: number;
  /** With `platforms: true`, for an index. */
  readonly platforms?: readonly PlatformManifest[];
  /** Which endpoint answered: the registry's base URL or a mirror's. */
  readonly source: string;
}

export interface RegistryClientOptions extends TransportOptions {
  /** Per registry host: plain HTTP (`insecure`) or an extra CA bundle. */
  readonly registries?: RegistryHostsConfig;
  readonly mirrors?: MirrorConfig;
  /** A transport to share (its options then apply instead of these). */
  readonly transport?: Transport;
}

/** Codes after which the next credential is tried (kubelet tries each until one works). */
const NEXT_CREDENTIAL = new Set([
  'ERR_REGISTRY_UNAUTHORIZED',
  'ERR_REGISTRY_FORBIDDEN',
  'ERR_REPOSITORY_NOT_FOUND',
]);

interface Attempt {
  readonly image: ImageReference;
  readonly endpoint: Endpoint;
  /** The repository on this endpoint (with a mirror's prefix). */
  readonly repository: string;
  readonly credential: RegistryCredential | undefined;
  readonly signal: AbortSignal | undefined;
  readonly maxAttempts: number | undefined;
  /** For messages: "127.0.0.1:5000/app:1 at https://127.0.0.1:5000". */
  readonly what: string;
}

export class RegistryClient {
  readonly #transport: Transport;
  readonly #ownsTransport: boolean;
  readonly #auth: RegistryAuth;
  readonly #registries: RegistryHostsConfig | undefined;
  readonly #mirrors: MirrorConfig | undefined;

  constructor(options: RegistryClientOptions = {}) {
    if (options.mirrors !== undefined) validateMirrorConfig(options.mirrors);
    this.#ownsTransport = options.transport === undefined;
    this.#transport = options.transport ?? new Transport(options);
    this.#auth = new RegistryAuth({
      transport: this.#transport,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
    this.#registries = options.registries;
    this.#mirrors = options.mirrors;
  }

  /** Token fetches made so far. */
  get tokenFetches(): number {
    return this.#auth.tokens.fetches;
  }

  /**
   * The digest, media type and size of the manifest `ref` names, by HEAD. A tag resolves to
   * what it points at now; a digest reference is confirmed to exist.
   */
  async resolve(
    ref: string | ImageReference,
    options: ResolveOptions = {},
  ): Promise<ResolvedImage> {
    const image = typeof ref === 'string' ? parseReference(ref) : ref;
    const endpoints = endpointsFor(image.registry, this.#mirrors, this.#registries);
    const failures: EndpointFailure[] = [];
    for (const endpoint of endpoints) {
      try {
        return await this.#resolveAt(image, endpoint, options);
      } catch (error) {
        if (!triesNextEndpoint(error) || !isPrepullError(error)) throw error;
        failures.push({ endpoint, error });
      }
    }
    throw combineFailures(failures);
  }

  /**
   * How long the registry of `ref` (its first endpoint: a mirror when one is configured) asked
   * not to be asked again, by Retry-After on its latest 429 or 503: ms from now, or undefined.
   */
  retryAfterMs(ref: string | ImageReference): number | undefined {
    const image = typeof ref === 'string' ? parseReference(ref) : ref;
    const [first] = endpointsFor(image.registry, this.#mirrors, this.#registries);
    return first === undefined
      ? undefined
      : this.#transport.retryAfterMs(new URL(first.baseUrl).host);
  }

  /** Closes pooled connections (of a transport this client made). */
  async close(): Promise<void> {
    if (this.#ownsTransport) await this.#transport.close();
  }

  async #resolveAt(
    image: ImageReference,
    endpoint: Endpoint,
    options: ResolveOptions,
  ): Promise<ResolvedImage> {
    const repository = endpoint.repositoryPrefix + image.repository;
    const credentials = credentialsFor(image, endpoint, repository, options.credentials);
    const candidates = credentials.length === 0 ? [undefined] : credentials;
    const refused: PrepullError[] = [];
    for (const credential of candidates) {
      const attempt: Attempt = {
        image,
        endpoint,
        repository,
        credential,
        signal: options.signal,
        maxAttempts: options.maxAttempts,
        what: `${image.canonical} at ${describeEndpoint(endpoint)}`,
      };
      try {
        return await this.#resolveWith(attempt, options.platforms === true);
      } catch (error) {
        if (!isPrepullError(error) || !NEXT_CREDENTIAL.has(error.code)) throw error;
        refused.push(error);
      }
    }
    const last = refused[refused.length - 1];
    if (last === undefined) throw new Error('unreachable: no credential tried');
    if (refused.length === 1) throw last;
    throw new PrepullError(
      last.code,
      `${last.message} (each of ${refused.length} matching credentials was tried: ` +
        `${candidates.map((c) => c?.source ?? 'anonymous').join(', ')})`,
      { cause: last },
    );
  }

  async #resolveWith(attempt: Attempt, platforms: boolean): Promise<ResolvedImage> {
    const reference = referenceForManifest(attempt.image);
    const head = await this.#manifestRequest(attempt, 'HEAD', reference);
    const res = head.response;
    if (res.status !== 200) throw await this.#failure(attempt, head);

    const headerDigest = headerValue(res.headers, 'docker-content-digest')?.trim();
    const mediaType = bareMediaType(headerValue(res.headers, 'content-type'));
    const length = Number(headerValue(res.headers, 'content-length'));
    let resolved: Omit<ResolvedImage, 'source'>;
    if (
      headerDigest !== undefined &&
      isValidDigest(headerDigest) &&
      mediaType !== undefined &&
      isManifestMediaType(mediaType) &&
      Number.isSafeInteger(length)
    ) {
      resolved = { digest: headerDigest, mediaType, size: length };
    } else {
      // Without the digest header, the digest is the hash of the manifest itself.
      resolved = await this.#resolveByGet(attempt, reference, headerDigest);
    }
    const wanted = attempt.image.digest;
    if (wanted !== undefined && resolved.digest !== wanted) {
      throw new PrepullError(
        'ERR_REGISTRY_PROTOCOL',
        `${attempt.what}: asked for ${wanted}, the registry answered ${resolved.digest}. ` +
          'Report it to the registry operators.',
      );
    }
    const source = attempt.endpoint.baseUrl;
    if (!platforms || !isIndexMediaType(resolved.mediaType)) return { ...resolved, source };
    return { ...resolved, platforms: await this.#platforms(attempt, resolved.digest), source };
  }

  async #resolveByGet(
    attempt: Attempt,
    reference: string,
    headerDigest: string | undefined,
  ): Promise<Omit<ResolvedImage, 'source'>> {
    const get = await this.#manifestRequest(attempt, 'GET', reference);
    if (get.response.status !== 200) throw await this.#failure(attempt, get);
    const body = get.response.body;
    const mediaType =
      bareMediaType(headerValue(get.response.headers, 'content-type')) ?? mediaTypeOfBody(body);
    const chosen =
      mediaType !== undefined && isManifestMediaType(mediaType) ? mediaType : mediaTypeOfBody(body);
    if (chosen === undefined || !isManifestMediaType(chosen)) {
      throw new PrepullError(
        'ERR_REGISTRY_PROTOCOL',
        `${attempt.what}: the registry answered a ${JSON.stringify(mediaType ?? 'untyped')} ` +
          'document, not an image manifest or index. Only OCI and Docker v2 manifests can be pulled.',
      );
    }
    const algorithm = digestAlgorithm(attempt.image.digest ?? headerDigest);
    return { digest: digestOf(body, algorithm), mediaType: chosen, size: body.length };
  }

  async #platforms(attempt: Attempt, digest: string): Promise<PlatformManifest[]> {
    // By digest, so a tag moving between the HEAD and this GET cannot mix two manifests.
    const get = await this.#manifestRequest(attempt, 'GET', digest);
    if (get.response.status !== 200) throw await this.#failure(attempt, get);
    verifyDigest(get.response.body, digest, attempt.what);
    return indexPlatforms(get.response.body, attempt.what);
  }

  #manifestRequest(
    attempt: Attempt,
    method: 'HEAD' | 'GET',
    reference: string,
  ): Promise<AuthorizedResponse> {
    return this.#send(attempt, method, `manifests/${reference}`, { accept: MANIFEST_ACCEPT });
  }

  #send(
    attempt: Attempt,
    method: 'HEAD' | 'GET',
    resource: string,
    headers: Record<string, string> = {},
  ): Promise<AuthorizedResponse> {
    const { endpoint } = attempt;
    const url = new URL(`${endpoint.baseUrl}/v2/${attempt.repository}/${resource}`);
    return this.#auth.send(
      {
        registry: endpoint.host,
        key: endpoint.baseUrl,
        ca: endpoint.ca,
        insecure: endpoint.insecure,
      },
      attempt.repository,
      attempt.credential,
      {
        method,
        url,
        headers,
        ca: endpoint.ca,
        signal: attempt.signal,
        ...(attempt.maxAttempts === undefined ? {} : { maxAttempts: attempt.maxAttempts }),
      },
    );
  }

  async #failure(attempt: Attempt, answer: AuthorizedResponse): Promise<PrepullError> {
    const res = answer.response;
    switch (res.status) {
      case 401:
        return unauthorized(attempt, answer);
      case 403:
        return forbidden(attempt, res);
      case 404:
        return this.#notFound(attempt, res);
      default:
        return transientAnswerError(attempt.what, res) ?? unexpected(attempt, res);
    }
  }

  // A HEAD 404 has no body to say whether the tag or the repository is missing, and a manifest
  // GET would not say either: distribution answers MANIFEST_UNKNOWN for both. The tag list
  // does (NAME_UNKNOWN when there is no such repository), costs one small GET on errors only,
  // and unlike a manifest GET never counts against Docker Hub's pull limit.
  async #notFound(attempt: Attempt, res: TransportResponse): Promise<PrepullError> {
    const cause = new Error(describeAnswer(res));
    let repositoryMissing = hasErrorCode(res, 'NAME_UNKNOWN');
    if (!repositoryMissing) {
      try {
        const tags = await this.#send(attempt, 'GET', 'tags/list?n=1');
        repositoryMissing =
          tags.response.status === 404 && hasErrorCode(tags.response, 'NAME_UNKNOWN');
      } catch (error) {
        if (!triesNextEndpoint(error)) throw error;
      }
    }
    if (repositoryMissing) {
      return new PrepullError(
        'ERR_REPOSITORY_NOT_FOUND',
        `${attempt.what}: the registry has no repository ${JSON.stringify(attempt.repository)}. ` +
          'Check the image name (and the credentials: some registries hide private repositories).',
        { cause },
      );
    }
    const kind = attempt.image.digest === undefined ? 'tag' : 'digest';
    return new PrepullError(
      'ERR_IMAGE_NOT_FOUND',
      `${attempt.what}: the registry has no manifest for ${kind} ` +
        `${JSON.stringify(referenceForManifest(attempt.image))} in ${JSON.stringify(attempt.repository)}. ` +
        'Check the tag or digest, or push the image.',
      { cause },
    );
  }
}

function credentialsFor(
  image: ImageReference,
  endpoint: Endpoint,
  repository: string,
  given: ResolveOptions['credentials'],
): readonly RegistryCredential[] {
  if (given === undefined) return [];
  if (isLookup(given)) {
    return endpoint.mirror
      ? given.lookup({ registry: endpoint.host, repository })
      : given.lookup(image);
  }
  // Credentials matched for the image's registry are its secrets: never sent to a mirror.
  return endpoint.mirror ? [] : given;
}

function isLookup(value: ResolveOptions['credentials']): value is CredentialLookup {
  return value !== undefined && 'lookup' in value && typeof value.lookup === 'function';
}

function unauthorized(attempt: Attempt, answer: AuthorizedResponse): PrepullError {
  const { credential, what } = attempt;
  const cause = new Error(describeAnswer(answer.response));
  const insufficientScope = answer.challenge?.params.error === 'insufficient_scope';
  if (credential === undefined) {
    return new PrepullError(
      'ERR_REGISTRY_UNAUTHORIZED',
      `${what}: the registry needs credentials (HTTP 401) and none matched this image. Add a pull ` +
        `secret with an entry for ${attempt.endpoint.host} to the PrePull's imagePullSecrets ` +
        '(or a Docker config for prepull sync). If the repository is public, check its name.',
      { cause },
    );
  }
  if (insufficientScope) {
    return new PrepullError(
      'ERR_REGISTRY_FORBIDDEN',
      `${what}: the ${String(credential)} may not pull ${JSON.stringify(attempt.repository)} ` +
        '(the token service granted no pull access). Grant the account pull access, use ' +
        'credentials that have it, or check that the repository exists.',
      { cause },
    );
  }
  return new PrepullError(
    'ERR_REGISTRY_UNAUTHORIZED',
    `${what}: the registry refused the ${String(credential)} (HTTP 401). Check the username and ` +
      'password or token in that secret.',
    { cause },
  );
}

function forbidden(attempt: Attempt, res: TransportResponse): PrepullError {
  const who =
    attempt.credential === undefined ? 'anonymous access' : `the ${String(attempt.credential)}`;
  return new PrepullError(
    'ERR_REGISTRY_FORBIDDEN',
    `${attempt.what}: the registry denied ${who} (${describeAnswer(res)}). Grant the account ` +
      'pull access or use credentials that have it.',
    { cause: new Error(describeAnswer(res)) },
  );
}

function unexpected(attempt: Attempt, res: TransportResponse): PrepullError {
  if (res.status === 400 && attempt.endpoint.insecure) {
    return new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${attempt.what}: HTTP 400 to a plain-HTTP request; if this registry speaks HTTPS, do not ` +
        'configure it as insecure.',
      { cause: new Error(describeAnswer(res)) },
    );
  }
  return unexpectedAnswerError(attempt.what, res);
}
