// The registry client as `sync` and `agent` wire it: per-registry plain HTTP or extra CAs from
// the flags, proxies from the environment (as every runtime reads them), request metrics.
import { readFileSync } from 'node:fs';
import { PrepullError, fileErrorText } from '../errors.ts';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.ts';
import { Keyring, parseDockerConfigFile } from '../registry/credentials.ts';
import type { RegistryHostsConfig } from '../registry/mirrors.ts';
import { proxyFromEnv } from '../registry/proxy.ts';
import type { Metrics } from '../telemetry/metrics.ts';

export interface RegistryFlags {
  insecureRegistries: readonly string[];
  registryCAs: Readonly<Record<string, string>>;
}

/** The flags' registry settings, each CA file read now: one that cannot be read is a usage error. */
export function registryHosts(config: RegistryFlags): RegistryHostsConfig {
  const hosts: Record<string, { insecure?: boolean; ca?: string }> = {};
  for (const host of config.insecureRegistries) hosts[host] = { insecure: true };
  for (const [host, file] of Object.entries(config.registryCAs)) {
    let ca: string;
    try {
      ca = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new PrepullError(
        'ERR_USAGE',
        `--registry-ca ${host}=${file}: cannot read the file: ${fileErrorText(cause)}`,
        { cause },
      );
    }
    hosts[host] = { ...hosts[host], ca };
  }
  return hosts;
}

/** The credentials of a `--docker-config FILE`, matched to images as kubelet matches them. */
export function dockerConfigKeyring(path: string): Keyring {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new PrepullError(
      'ERR_USAGE',
      `--docker-config ${path}: cannot read the file: ${fileErrorText(cause)}`,
      { cause },
    );
  }
  return new Keyring([parseDockerConfigFile(text, `docker config ${path}`)]);
}

/**
 * The registry client for `hosts` (from `registryHosts`, read before anything connects); its
 * requests counted in `metrics` when given (`audit` keeps none).
 */
export function newRegistryClient(hosts: RegistryHostsConfig, metrics?: Metrics): RegistryClient {
  return new RegistryClient({
    registries: hosts,
    // The one place the environment is read for the registry client: proxies, as every runtime does.
    proxy: proxyFromEnv(process.env),
    ...(metrics === undefined ? {} : { onRequest: requestMetrics(metrics) }),
  });
}

function requestMetrics(metrics: Metrics): NonNullable<RegistryClientOptions['onRequest']> {
  return (event) => {
    metrics.registryRequests.inc({
      registry: event.registry,
      code: event.status === undefined ? 'error' : String(event.status),
    });
    metrics.registryRequestDuration.observe({ registry: event.registry }, event.durationMs / 1000);
  };
}
