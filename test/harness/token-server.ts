// A token service that behaves like Docker Hub's auth service, for the harness's token-auth
// registry: it checks Basic credentials (or a refresh token), grants the actions each account
// may have on each requested repository (an empty access list otherwise, as Hub does), and
// issues ES256 JWTs carrying their certificate in `x5c`, which Debian's docker-registry 2.8
// verifies against `auth.token.rootcertbundle`. It counts every token request per scope.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestCa } from './tls.ts';

export interface TokenUser {
  readonly username: string;
  readonly password: string;
  /** Repositories it may pull: exact names, or patterns with "*" ("team/*", "*"). */
  readonly pull: readonly string[];
  readonly push?: readonly string[];
}

export interface TokenServerOptions {
  /** Where the signing key and certificate are written. */
  readonly dir: string;
  readonly users: readonly TokenUser[];
  /** Repositories anyone may pull without credentials. */
  readonly anonymousPull?: readonly string[];
  readonly service?: string;
  readonly issuer?: string;
  /** Token lifetime in seconds, advertised as expires_in and written as the JWT's exp. */
  readonly expiresIn?: number;
  /** Serve HTTPS with this CA's server certificate (as Hub's realm is HTTPS). */
  readonly tls?: TestCa;
}

interface Access {
  readonly type: string;
  readonly name: string;
  readonly actions: string[];
}

export interface TokenRequestRecord {
  readonly method: string;
  /** The scopes asked for, as sent ("repository:team/app:pull"). */
  readonly scopes: readonly string[];
  /** Who asked: a username, or undefined for anonymous requests. */
  readonly account: string | undefined;
  readonly grant: 'anonymous' | 'basic' | 'password' | 'refresh_token';
  readonly status: number;
  readonly granted: readonly Access[];
}

const DEFAULT_SERVICE = 'prepull-harness-registry';
const DEFAULT_ISSUER = 'prepull-harness-token-server';

export class TokenServer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** The certificate the registry trusts (`rootcertbundle`). */
  readonly rootCertFile: string;
  readonly requests: TokenRequestRecord[] = [];
  /** Seconds; may be changed while running. */
  expiresIn: number;

  readonly #dir: string;
  readonly #server: HttpServer | HttpsServer;
  readonly #users: readonly TokenUser[];
  readonly #anonymousPull: readonly string[];
  readonly #refreshTokens = new Map<string, string>();
  #key!: KeyObject;
  #x5c!: string;

  private constructor(
    options: TokenServerOptions,
    server: HttpServer | HttpsServer,
    realm: string,
  ) {
    this.#dir = options.dir;
    this.#server = server;
    this.realm = realm;
    this.service = options.service ?? DEFAULT_SERVICE;
    this.issuer = options.issuer ?? DEFAULT_ISSUER;
    this.expiresIn = options.expiresIn ?? 300;
    this.#users = options.users;
    this.#anonymousPull = options.anonymousPull ?? [];
    this.rootCertFile = join(options.dir, 'token-signer.pem');
  }

  static async start(options: TokenServerOptions): Promise<TokenServer> {
    mkdirSync(options.dir, { recursive: true });
    const holder: { instance?: TokenServer } = {};
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (holder.instance === undefined) {
        res.writeHead(503).end();
        return;
      }
      holder.instance.#handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    const server = options.tls
      ? createHttpsServer(
          { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
          handler,
        )
      : createHttpServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    const scheme = options.tls ? 'https' : 'http';
    const instance = new TokenServer(options, server, `${scheme}://127.0.0.1:${port}/token`);
    instance.rotateKey();
    holder.instance = instance;
    return instance;
  }

  /**
   * A new signing key and certificate, written over the old ones: tokens signed before stop
   * working once the registry restarts and reads its rootcertbundle again, as when a real
   * token service rotates its key.
   */
  rotateKey(): void {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'token-signer.key',
        '-out',
        'token-signer.pem',
        '-days',
        '3',
        '-subj',
        '/CN=prepull harness token signer',
      ],
      { cwd: this.#dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.#key = createPrivateKey(readFileSync(join(this.#dir, 'token-signer.key')));
    const pem = readFileSync(this.rootCertFile, 'utf8');
    this.#x5c = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  }

  /** Successful token requests that asked for `scope` (e.g. "repository:team/app:pull"). */
  fetchesFor(scope: string): number {
    return this.requests.filter((r) => r.status === 200 && r.scopes.includes(scope)).length;
  }

  /** Successful token requests per scope asked for. */
  fetchesByScope(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.requests) {
      if (r.status !== 200) continue;
      for (const scope of r.scopes) counts.set(scope, (counts.get(scope) ?? 0) + 1);
    }
    return counts;
  }

  /** A refresh token (a Docker "identity token") for a user, as `docker login` would get. */
  refreshTokenFor(username: string): string {
    const token = randomBytes(24).toString('base64url');
    this.#refreshTokens.set(token, username);
    return token;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token');
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      reply(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
      return;
    }
    const params =
      req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
    const who = this.#authenticate(req, params);
    const scopes = params
      .getAll('scope')
      .flatMap((s) => s.split(' '))
      .filter(Boolean);
    const record = (status: number, granted: Access[]): void => {
      this.requests.push({
        method: req.method ?? '',
        scopes,
        account: who.user?.username,
        grant: who.grant,
        status,
        granted,
      });
    };
    if (who.failed || (params.get('service') ?? this.service) !== this.service) {
      record(401, []);
      reply(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication failed' }] });
      return;
    }
    const granted = scopes.flatMap((scope) => this.#grant(scope, who.user));
    record(200, granted);
    const token = this.#jwt(who.user?.username ?? '', granted);
    const issuedAt = new Date().toISOString();
    const answer: Record<string, unknown> =
      req.method === 'POST'
        ? {
            access_token: token,
            expires_in: this.expiresIn,
            issued_at: issuedAt,
            scope: scopes.join(' '),
          }
        : { token, access_token: token, expires_in: this.expiresIn, issued_at: issuedAt };
    if (req.method === 'GET' && params.get('offline_token') === 'true' && who.user !== undefined) {
      answer.refresh_token = this.refreshTokenFor(who.user.username);
    }
    reply(res, 200, answer);
  }

  #authenticate(
    req: IncomingMessage,
    params: URLSearchParams,
  ): { user?: TokenUser; grant: TokenRequestRecord['grant']; failed: boolean } {
    if (req.method === 'POST') {
      const grantType = params.get('grant_type');
      if (grantType === 'refresh_token') {
        const name = this.#refreshTokens.get(params.get('refresh_token') ?? '');
        const user = this.#users.find((u) => u.username === name);
        return user
          ? { user, grant: 'refresh_token', failed: false }
          : { grant: 'refresh_token', failed: true };
      }
      const user = this.#check(params.get('username'), params.get('password'));
      return user
        ? { user, grant: 'password', failed: false }
        : { grant: 'password', failed: true };
    }
    const header = req.headers.authorization;
    if (header === undefined) return { grant: 'anonymous', failed: false };
    const match = /^Basic\s+(\S+)$/i.exec(header);
    const decoded = Buffer.from(match?.[1] ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user =
      colon === -1 ? undefined : this.#check(decoded.slice(0, colon), decoded.slice(colon + 1));
    return user ? { user, grant: 'basic', failed: false } : { grant: 'basic', failed: true };
  }

  #check(username: string | null, password: string | null): TokenUser | undefined {
    return this.#users.find((u) => u.username === username && u.password === password);
  }

  // Hub's behaviour: a scope the account may not have is answered with a token granting less
  // (possibly nothing); the registry then refuses the request with insufficient_scope.
  #grant(scope: string, user: TokenUser | undefined): Access[] {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first === -1 || last === first) return [];
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const asked = scope.slice(last + 1).split(',');
    if (type !== 'repository') return [];
    const pull = user ? user.pull : this.#anonymousPull;
    const push = user?.push ?? [];
    const actions = asked.filter(
      (a) => (a === 'pull' && matchesAny(pull, name)) || (a === 'push' && matchesAny(push, name)),
    );
    return actions.length === 0 ? [] : [{ type, name, actions }];
  }

  #jwt(subject: string, access: Access[]): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [this.#x5c] };
    const claims = {
      iss: this.issuer,
      sub: subject,
      aud: this.service,
      exp: now + this.expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // JWS ES256 wants the raw r||s signature, not DER.
    const signature = sign('sha256', Buffer.from(signingInput), {
      key: this.#key,
      dsaEncoding: 'ieee-p1363',
    });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}

function matchesAny(patterns: readonly string[], name: string): boolean {
  return patterns.some((pattern) => {
    const regex = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
    return regex.test(name);
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}
