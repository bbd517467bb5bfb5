// Authentication: bearer tokens map to users and ServiceAccounts with the groups kube-apiserver
// gives them; requests without a token are system:anonymous.
import { randomBytes } from 'node:crypto';

export interface UserInfo {
  name: string;
  groups: string[];
}

export const ANONYMOUS: UserInfo = { name: 'system:anonymous', groups: ['system:unauthenticated'] };

export function serviceAccountUser(namespace: string, name: string): UserInfo {
  return {
    name: `system:serviceaccount:${namespace}:${name}`,
    groups: [
      'system:serviceaccounts',
      `system:serviceaccounts:${namespace}`,
      'system:authenticated',
    ],
  };
}

export class Identities {
  readonly #byToken = new Map<string, UserInfo>();

  /** Registers a user (groups get system:authenticated) and returns its bearer token. */
  addUser(name: string, groups: readonly string[] = [], token = newToken()): string {
    const all = groups.includes('system:authenticated')
      ? [...groups]
      : [...groups, 'system:authenticated'];
    this.#byToken.set(token, { name, groups: all });
    return token;
  }

  addServiceAccount(namespace: string, name: string, token = newToken()): string {
    this.#byToken.set(token, serviceAccountUser(namespace, name));
    return token;
  }

  /** The user for an Authorization header; null for a token nobody holds (401). */
  authenticate(header: string | undefined): UserInfo | null {
    if (header === undefined || header === '') return ANONYMOUS;
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (m === null) return null;
    return this.#byToken.get(m[1]!) ?? null;
  }
}

function newToken(): string {
  return randomBytes(24).toString('base64url');
}
