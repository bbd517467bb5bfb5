// One set of registry credentials, as every layer that handles them sees it: the registry client
// authenticates with it, the runtimes send it with a pull. Its secrets never print, serialise or
// inspect (which registry/credentials.ts, the keyring that finds them, relies on).

import { inspect } from 'node:util';

/** What stands in for a secret wherever a credential is shown. */
export const REDACTED = '[redacted]';

export interface RegistryCredentialInit {
  /** Where it came from, for people: "secret shop/regcred", "file /root/.docker/config.json". */
  source: string;
  /** The registry key it was filed under, as written: "https://index.docker.io/v1/". */
  key: string;
  username?: string | undefined;
  password?: string | undefined;
  identityToken?: string | undefined;
  registryToken?: string | undefined;
}

/**
 * One set of registry credentials. The secret parts live in private fields, so spreading,
 * Object.entries, JSON.stringify, util.inspect (and so pino and console) and template strings
 * all leave them out; code that needs them reads the getters on purpose.
 */
export class RegistryCredential {
  readonly source: string;
  readonly key: string;
  readonly username: string | undefined;
  readonly #password: string | undefined;
  readonly #identityToken: string | undefined;
  readonly #registryToken: string | undefined;

  constructor(init: RegistryCredentialInit) {
    this.source = init.source;
    this.key = init.key;
    this.username = init.username;
    this.#password = init.password;
    this.#identityToken = init.identityToken;
    this.#registryToken = init.registryToken;
  }

  get password(): string | undefined {
    return this.#password;
  }

  get identityToken(): string | undefined {
    return this.#identityToken;
  }

  get registryToken(): string | undefined {
    return this.#registryToken;
  }

  toJSON(): Record<string, string> {
    const shown: Record<string, string> = { source: this.source, key: this.key };
    if (this.username !== undefined) shown.username = this.username;
    if (this.#password !== undefined) shown.password = REDACTED;
    if (this.#identityToken !== undefined) shown.identityToken = REDACTED;
    if (this.#registryToken !== undefined) shown.registryToken = REDACTED;
    return shown;
  }

  toString(): string {
    const user = this.username === undefined ? '' : ` as ${JSON.stringify(this.username)}`;
    return `credentials from ${this.source} for ${JSON.stringify(this.key)}${user}`;
  }

  [inspect.custom](): string {
    return `RegistryCredential ${JSON.stringify(this.toJSON())}`;
  }
}
