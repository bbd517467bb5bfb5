// WWW-Authenticate challenges (RFC 7235) as registries send them, and the Bearer parameters a
// token is asked for with; auth.ts answers them.

import { PrepullError } from '../errors.ts';
import { type TransportResponse, headerValue } from './transport.ts';

export interface Challenge {
  /** Lowercased: "bearer", "basic". */
  readonly scheme: string;
  /** Parameter names lowercased; values unquoted. */
  readonly params: Readonly<Record<string, string>>;
  readonly token68?: string;
}

export interface BearerChallenge {
  readonly realm: URL;
  readonly service?: string;
  readonly scope?: string;
  /** RFC 6750 error, e.g. "insufficient_scope" or "invalid_token". */
  readonly error?: string;
}

const TOKEN_CHARS = /[A-Za-z0-9!#$%&'*+\-.^_`|~/]/;

/**
 * Parses a WWW-Authenticate value (RFC 7235): one or more challenges, each a scheme with
 * comma-separated parameters (quoted strings may hold commas and backslash escapes) or a
 * token68. Unreadable fragments are skipped rather than failing the whole header.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const parser = new ChallengeParser(header);
  let current: { scheme: string; params: Record<string, string>; token68?: string } | undefined;
  let afterScheme = false;
  while (parser.skipSeparators()) {
    const token = parser.readToken();
    if (token === '') {
      parser.skipOne();
      continue;
    }
    parser.skipSpaces();
    const paramValue = parser.peek() === '=' ? parser.readParamValue() : undefined;
    if (paramValue === undefined) {
      const token68 =
        afterScheme && current !== undefined ? parser.readToken68Rest(token) : undefined;
      if (token68 !== undefined && current !== undefined) {
        current.token68 = token68;
        afterScheme = false;
        continue;
      }
      current = { scheme: token.toLowerCase(), params: {} };
      challenges.push(current);
      afterScheme = true;
      continue;
    }
    afterScheme = false;
    if (current !== undefined) current.params[token.toLowerCase()] = paramValue;
  }
  return challenges;
}

class ChallengeParser {
  readonly #text: string;
  #at = 0;

  constructor(text: string) {
    this.#text = text;
  }

  peek(): string | undefined {
    return this.#text[this.#at];
  }

  skipOne(): void {
    this.#at++;
  }

  /** Skips spaces and commas; false at the end. */
  skipSeparators(): boolean {
    while (this.#at < this.#text.length && /[\s,]/.test(this.#text[this.#at] ?? '')) this.#at++;
    return this.#at < this.#text.length;
  }

  skipSpaces(): void {
    while (/[ \t]/.test(this.#text[this.#at] ?? 'x')) this.#at++;
  }

  readToken(): string {
    const start = this.#at;
    while (TOKEN_CHARS.test(this.#text[this.#at] ?? ' ')) this.#at++;
    return this.#text.slice(start, this.#at);
  }

  // At '=': a parameter value, or undefined (position unchanged) if the '=' pads a token68.
  readParamValue(): string | undefined {
    const save = this.#at;
    this.#at++;
    this.skipSpaces();
    const next = this.peek();
    if (next === undefined || next === ',' || next === '=') {
      this.#at = save;
      return undefined;
    }
    return next === '"' ? this.#readQuoted() : this.readToken();
  }

  // A token68 is the only thing after its scheme: then only '=' padding, the end or a comma.
  readToken68Rest(token: string): string | undefined {
    const save = this.#at;
    let padding = '';
    while (this.peek() === '=') {
      padding += '=';
      this.#at++;
    }
    this.skipSpaces();
    const next = this.peek();
    if (next === undefined || next === ',') return token + padding;
    this.#at = save;
    return undefined;
  }

  #readQuoted(): string {
    this.#at++; // opening quote
    let value = '';
    while (this.#at < this.#text.length) {
      const c = this.#text[this.#at++] ?? '';
      if (c === '"') return value;
      value += c === '\\' ? (this.#text[this.#at++] ?? '') : c;
    }
    return value; // unterminated: take what there is
  }
}

/** The first challenge prepull can answer, Bearer or Basic, in the order the registry gave. */
export function usableChallenge(res: TransportResponse): Challenge | undefined {
  const header = headerValue(res.headers, 'www-authenticate');
  if (header === undefined) return undefined;
  return parseChallenges(header).find((c) => c.scheme === 'bearer' || c.scheme === 'basic');
}

/** Reads a Bearer challenge's parameters; ERR_REGISTRY_PROTOCOL when the realm is unusable. */
export function bearerChallenge(challenge: Challenge, registry: string): BearerChallenge {
  const { realm, service, scope, error } = challenge.params;
  let url: URL | undefined;
  try {
    url = realm === undefined ? undefined : new URL(realm);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new PrepullError(
      'ERR_REGISTRY_PROTOCOL',
      `${registry} asked for a bearer token without a usable realm ` +
        `(${realm === undefined ? 'no realm' : `realm ${JSON.stringify(realm.slice(0, 200))}`}): ` +
        "the registry's token authentication is misconfigured.",
    );
  }
  return {
    realm: url,
    ...(service === undefined || service === '' ? {} : { service }),
    ...(scope === undefined || scope === '' ? {} : { scope }),
    ...(error === undefined ? {} : { error }),
  };
}
