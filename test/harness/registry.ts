// A real OCI registry (Debian's docker-registry, distribution 2.8) on a free loopback port, in one
// of the variants tests need: plain HTTP, htpasswd basic auth, TLS with the harness CA, or token
// auth through the harness's token server. It can be stopped and started again on the same port
// with the same storage, for outage tests, and its access log read back.
import bcrypt from 'bcryptjs';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Daemon, startProcess, waitUntil } from './processes.ts';
import type { TestCa } from './tls.ts';

export interface RegistryOptions {
  /** Unique within a harness: names the directory, the log and the component in errors. */
  name: string;
  auth?: { username: string; password: string };
  tls?: TestCa;
  /** Token auth: the registry sends clients to `realm` and trusts tokens signed under `rootCertBundle`. */
  token?: {
    realm: string;
    service: string;
    issuer: string;
    rootCertBundle: string;
    /** Credentials tests push with, and the CA the realm's certificate chains to. */
    username: string;
    password: string;
    caPem?: string;
  };
}

/** One line of the registry's access log. */
export interface AccessLogEntry {
  method: string;
  /** Path and query, as requested. */
  path: string;
  status: number;
  userAgent: string;
}

/** What a client needs to reach a registry. */
export interface RegistryEndpoint {
  name: string;
  /** host:port, as it appears in image references. */
  host: string;
  scheme: 'http' | 'https';
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  caPem?: string;
  username?: string;
  password?: string;
  /** For token auth: where clients get tokens. */
  realm?: string;
}

/** The access-log lines of a registry's log file (`<root>/logs/registry-<name>.log`). */
export function readAccessLog(file: string): AccessLogEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const entries: AccessLogEntry[] = [];
  const line = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"/;
  for (const row of text.split('\n')) {
    const match = line.exec(row);
    if (match === null) continue;
    entries.push({
      method: match[1] ?? '',
      path: match[2] ?? '',
      status: Number(match[3]),
      userAgent: match[4] ?? '',
    });
  }
  return entries;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** GET `url` and resolve with the status code (no redirects, body discarded). */
export function httpStatus(url: string, caPem?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(
      url,
      { method: 'GET', timeout: 2000, ...(caPem ? { ca: caPem } : {}) },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export class Registry extends Daemon {
  protected readonly graceMs = 3000;
  readonly endpoint: RegistryEndpoint;
  private readonly configFile: string;

  private constructor(root: string, endpoint: RegistryEndpoint, configFile: string) {
    super(root);
    this.endpoint = endpoint;
    this.configFile = configFile;
  }

  static async create(harnessRoot: string, options: RegistryOptions): Promise<Registry> {
    const dir = join(harnessRoot, 'registry', options.name);
    mkdirSync(join(dir, 'data'), { recursive: true });
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const scheme = options.tls ? 'https' : 'http';
    const lines = [
      'version: 0.1',
      'log:',
      '  level: info',
      '  accesslog: { disabled: false }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(dir, 'data')} }`,
      '  delete: { enabled: true }',
      '  maintenance: { uploadpurging: { enabled: false } }',
      'http:',
      `  addr: ${host}`,
      '  headers: { X-Content-Type-Options: [nosniff] }',
    ];
    if (options.tls) {
      lines.push(
        '  tls:',
        `    certificate: ${options.tls.certFile}`,
        `    key: ${options.tls.keyFile}`,
      );
    }
    if (options.auth) {
      const hash = bcrypt.hashSync(options.auth.password, 6);
      const htpasswd = join(dir, 'htpasswd');
      writeFileSync(htpasswd, `${options.auth.username}:${hash}\n`);
      lines.push('auth:', '  htpasswd:', '    realm: prepull-harness', `    path: ${htpasswd}`);
    }
    if (options.token) {
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${options.token.realm}`,
        `    service: ${options.token.service}`,
        `    issuer: ${options.token.issuer}`,
        `    rootcertbundle: ${options.token.rootCertBundle}`,
      );
    }
    const configFile = join(dir, 'config.yml');
    writeFileSync(configFile, `${lines.join('\n')}\n`);
    const endpoint: RegistryEndpoint = {
      name: options.name,
      host,
      scheme,
      url: `${scheme}://${host}`,
      ...(options.tls ? { caPem: options.tls.caPem } : {}),
      ...(options.auth ? { username: options.auth.username, password: options.auth.password } : {}),
      ...(options.token
        ? {
            username: options.token.username,
            password: options.token.password,
            realm: options.token.realm,
            ...(options.token.caPem === undefined ? {} : { caPem: options.token.caPem }),
          }
        : {}),
    };
    const registry = new Registry(harnessRoot, endpoint, configFile);
    await registry.start();
    return registry;
  }

  /**
   * Requests the registry has logged so far (all runs of it), oldest first. Its access log
   * goes to the process log; lines are in the combined log format.
   */
  accessLog(): AccessLogEntry[] {
    return this.logFile === undefined ? [] : readAccessLog(this.logFile);
  }

  /** Starts the registry (again), on the same port and storage. */
  override async start(): Promise<void> {
    if (this.running) return;
    this.proc = startProcess(this.root, `registry-${this.endpoint.name}`, 'docker-registry', [
      'serve',
      this.configFile,
    ]);
    const proc = this.proc;
    await waitUntil(`GET ${this.endpoint.url}/v2/ answers`, proc, async () => {
      const status = await httpStatus(`${this.endpoint.url}/v2/`, this.endpoint.caPem);
      return status === 200 || status === 401 ? status : undefined;
    });
  }
}
