// Which proxy a registry request goes through, decided the way Go's net/http does it
// (golang.org/x/net/http/httpproxy), because kubelet, containerd and Docker do it that way and a
// node's HTTPS_PROXY/NO_PROXY were written for them. Pure functions: the environment is read by
// the config layer and handed in.

import { BlockList, isIP } from 'node:net';

export interface ProxyConfig {
  /** Proxy for http:// registries (HTTP_PROXY). */
  readonly httpProxy?: string | undefined;
  /** Proxy for https:// registries (HTTPS_PROXY); http:// requests never use it. */
  readonly httpsProxy?: string | undefined;
  /** NO_PROXY: comma-separated hosts, domains, IPs and CIDRs reached directly; "*" for all. */
  readonly noProxy?: string | undefined;
}

/**
 * Reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY (uppercase first, then lowercase, as Go does) from
 * an environment map such as process.env. Empty values count as unset.
 */
export function proxyFromEnv(env: Readonly<Record<string, string | undefined>>): ProxyConfig {
  const read = (name: string): string | undefined => {
    const value = env[name] ?? env[name.toLowerCase()];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const config: { httpProxy?: string; httpsProxy?: string; noProxy?: string } = {};
  const httpProxy = read('HTTP_PROXY');
  const httpsProxy = read('HTTPS_PROXY');
  const noProxy = read('NO_PROXY');
  if (httpProxy !== undefined) config.httpProxy = httpProxy;
  if (httpsProxy !== undefined) config.httpsProxy = httpsProxy;
  if (noProxy !== undefined) config.noProxy = noProxy;
  return config;
}

/**
 * The proxy URL to use for `url`, or undefined to connect directly. https:// uses only
 * httpsProxy and http:// only httpProxy; localhost and loopback addresses are never proxied;
 * a proxy written without a scheme ("proxy:3128") is http://.
 */
export function proxyFor(url: URL, config: ProxyConfig | undefined): string | undefined {
  if (config === undefined) return undefined;
  const proxy = url.protocol === 'https:' ? config.httpsProxy : config.httpProxy;
  if (proxy === undefined || proxy === '') return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (isLoopback(host)) return undefined;
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  if (noProxyMatches(host, port, config.noProxy ?? '')) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/** A proxy URL fit for messages and logs: user and password removed. */
export function redactProxy(proxy: string): string {
  return proxy.replace(/\/\/[^/@]*@/, '//[redacted]@');
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || host.startsWith('::ffff:127.');
  return false;
}

// httpproxy's useProxy: "*" matches all; IPs and CIDRs match addresses; "example.com" matches
// the domain and its subdomains, ".example.com" and "*.example.com" only subdomains; an entry
// with a port matches only that port.
function noProxyMatches(host: string, port: string, noProxy: string): boolean {
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (cidrContains(entry, host)) return true;
      continue;
    }
    const [entryHost, entryPort] = splitEntry(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(entryHost) !== 0) {
      if (entryHost === host) return true;
      continue;
    }
    if (domainMatches(entryHost, host)) return true;
  }
  return false;
}

function splitEntry(entry: string): [string, string | undefined] {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed !== null) return [bracketed[1] ?? '', bracketed[2]];
  if (isIP(entry) === 6) return [entry, undefined];
  const withPort = /^(.*):(\d+)$/.exec(entry);
  return withPort === null ? [entry, undefined] : [withPort[1] ?? '', withPort[2]];
}

function domainMatches(entry: string, host: string): boolean {
  const subdomainsOnly = entry.startsWith('.') || entry.startsWith('*.');
  const domain = entry.replace(/^\*?\./, '').replace(/\.$/, '');
  if (domain === '') return false;
  const name = host.replace(/\.$/, '');
  if (name.endsWith(`.${domain}`)) return true;
  return !subdomainsOnly && name === domain;
}

function cidrContains(cidr: string, host: string): boolean {
  const [address = '', bitsText = ''] = cidr.split('/');
  const family = isIP(address);
  const hostFamily = isIP(host);
  const bits = Number(bitsText);
  if (family === 0 || hostFamily !== family || !Number.isInteger(bits)) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  try {
    const list = new BlockList();
    list.addSubnet(address, bits, type);
    return list.check(host, type);
  } catch {
    return false; // a malformed entry matches nothing, as Go ignores it
  }
}
