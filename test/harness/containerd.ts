// A real containerd (Debian's 1.6) with its CRI plugin, every path of its own under the harness
// root, pulling from the harness registries through hosts.toml (plain HTTP, or HTTPS trusting the
// harness CA), and able to run pod sandboxes on these machines (restrict_oom_score_adj: they
// refuse the -998 OOM score containerd gives the pause container, and runc then fails with
// "can't get final child's PID from pipe: EOF"; docs/development.md, the harness).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeletCri } from './cri.ts';
import { Daemon, startProcess, waitUntil } from './processes.ts';
import type { RegistryEndpoint } from './registry.ts';

export interface ContainerdOptions {
  registries: readonly RegistryEndpoint[];
  /** The image CRI uses for pod sandboxes; it must be pullable from one of the registries. */
  sandboxImage: string;
  /** cgroup parent for pods started by the harness, so cleanup can find their cgroups. */
  cgroupParent: string;
}

export interface ContainerdEndpoint {
  /** Path of the gRPC socket (CRI and containerd's own services). */
  socket: string;
  /** The sandbox (pause) image CRI is configured with. */
  sandboxImage: string;
  /** containerd namespace holding the images kubelet sees. */
  namespace: 'k8s.io';
  cgroupParent: string;
}

function toml(value: string): string {
  return JSON.stringify(value);
}

function hostsToml(registry: RegistryEndpoint, caFile: string | undefined): string {
  return [
    `server = ${toml(registry.url)}`,
    '',
    `[host.${toml(registry.url)}]`,
    '  capabilities = ["pull", "resolve"]',
    ...(caFile !== undefined ? [`  ca = ${toml(caFile)}`] : []),
    '',
  ].join('\n');
}

export class Containerd extends Daemon {
  protected readonly graceMs = 5000;
  readonly endpoint: ContainerdEndpoint;
  private readonly configFile: string;

  private constructor(root: string, endpoint: ContainerdEndpoint, configFile: string) {
    super(root);
    this.endpoint = endpoint;
    this.configFile = configFile;
  }

  static async create(harnessRoot: string, options: ContainerdOptions): Promise<Containerd> {
    const dir = join(harnessRoot, 'containerd');
    const certsDir = join(dir, 'certs.d');
    for (const sub of ['root', 'state', 'cni/bin', 'cni/conf', 'opt', 'certs.d']) {
      mkdirSync(join(dir, sub), { recursive: true });
    }
    for (const registry of options.registries) {
      // containerd looks for certs.d/<host:port>; ':' is allowed in directory names on Linux.
      const exact = join(certsDir, registry.host);
      mkdirSync(exact, { recursive: true });
      let caFile: string | undefined;
      if (registry.caPem !== undefined) {
        caFile = join(exact, 'ca.crt');
        writeFileSync(caFile, registry.caPem);
      }
      writeFileSync(join(exact, 'hosts.toml'), hostsToml(registry, caFile));
    }
    const socket = join(dir, 'containerd.sock');
    const config = [
      'version = 2',
      `root = ${toml(join(dir, 'root'))}`,
      `state = ${toml(join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
      '',
      '[grpc]',
      `  address = ${toml(socket)}`,
      '',
      '[ttrpc]',
      `  address = ${toml(`${socket}.ttrpc`)}`,
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${toml(join(dir, 'opt'))}`,
      '',
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = ${toml(options.sandboxImage)}`,
      '  restrict_oom_score_adj = true',
      '  disable_apparmor = true',
      '',
      '[plugins."io.containerd.grpc.v1.cri".cni]',
      `  bin_dir = ${toml(join(dir, 'cni/bin'))}`,
      `  conf_dir = ${toml(join(dir, 'cni/conf'))}`,
      '',
      '[plugins."io.containerd.grpc.v1.cri".registry]',
      `  config_path = ${toml(certsDir)}`,
      '',
    ].join('\n');
    const configFile = join(dir, 'config.toml');
    writeFileSync(configFile, config);
    const endpoint: ContainerdEndpoint = {
      socket,
      sandboxImage: options.sandboxImage,
      namespace: 'k8s.io',
      cgroupParent: options.cgroupParent,
    };
    const containerd = new Containerd(harnessRoot, endpoint, configFile);
    await containerd.start();
    return containerd;
  }

  /** Starts containerd (again), with the same configuration and state. */
  override async start(): Promise<void> {
    if (this.running) return;
    this.proc = startProcess(this.root, 'containerd', 'containerd', ['--config', this.configFile]);
    const cri = new KubeletCri(this.endpoint.socket);
    try {
      await waitUntil('CRI Version answers on its socket', this.proc, async () => {
        const version = await cri.version(1000);
        return version.runtime_name === '' ? undefined : version;
      });
    } finally {
      cri.close();
    }
  }
}
