// A real Docker Engine (Debian's dockerd 20.10) with its own data root, exec root and socket under
// the harness root, no bridge and no iptables, treating the harness's plain-HTTP registries as
// insecure and trusting the harness CA for the TLS one (Docker reads registry CAs only from
// /etc/docker/certs.d, so that file is recorded for cleanup).
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { EXTERNAL_FILES } from './cleanup.ts';
import { Daemon, startProcess, waitUntil } from './processes.ts';
import type { RegistryEndpoint } from './registry.ts';

export interface DockerEndpoint {
  /** Path of the Engine API socket. */
  socket: string;
  cgroupParent: string;
}

/** GET `path` on the Engine API over its unix socket; resolves with status and body. */
export function dockerGet(socket: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export class DockerEngine extends Daemon {
  protected readonly graceMs = 15000;
  readonly endpoint: DockerEndpoint;
  private readonly args: string[];

  private constructor(root: string, endpoint: DockerEndpoint, args: string[]) {
    super(root);
    this.endpoint = endpoint;
    this.args = args;
  }

  static async create(
    harnessRoot: string,
    options: { registries: readonly RegistryEndpoint[]; cgroupParent: string },
  ): Promise<DockerEngine> {
    const dir = join(harnessRoot, 'docker');
    mkdirSync(join(dir, 'data'), { recursive: true });
    mkdirSync(join(dir, 'exec'), { recursive: true });
    const socket = join(dir, 'docker.sock');
    const configFile = join(dir, 'daemon.json');
    writeFileSync(configFile, '{}\n');
    const args = [
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--host',
      `unix://${socket}`,
      '--pidfile',
      join(dir, 'docker.pid'),
      '--config-file',
      configFile,
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--userland-proxy=false',
      '--cgroup-parent',
      options.cgroupParent,
    ];
    for (const registry of options.registries) {
      if (registry.scheme === 'http') {
        args.push('--insecure-registry', registry.host);
      } else if (registry.caPem !== undefined) {
        const certDir = join('/etc/docker/certs.d', registry.host);
        appendFileSync(join(harnessRoot, EXTERNAL_FILES), `${certDir}\n`);
        mkdirSync(certDir, { recursive: true });
        writeFileSync(join(certDir, 'ca.crt'), registry.caPem);
      }
    }
    const engine = new DockerEngine(
      harnessRoot,
      { socket, cgroupParent: options.cgroupParent },
      args,
    );
    await engine.start();
    return engine;
  }

  override async start(): Promise<void> {
    if (this.running) return;
    this.proc = startProcess(this.root, 'dockerd', 'dockerd', this.args);
    await waitUntil(
      'GET /_ping answers OK on its socket',
      this.proc,
      async () => {
        const { status, body } = await dockerGet(this.endpoint.socket, '/_ping');
        return status === 200 && body === 'OK' ? true : undefined;
      },
      60_000,
    );
  }
}
