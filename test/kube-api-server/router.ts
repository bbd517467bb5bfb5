// Request routing as kube-apiserver's RequestInfoFactory parses paths: API prefix, group,
// version, namespace, resource, name, subresource, and the verb from method and query.
export interface RequestInfo {
  resourceRequest: boolean;
  path: string;
  verb: string;
  group: string;
  version: string;
  namespace: string;
  resource: string;
  name: string;
  subresource: string;
  /** Path segments after /api or /apis (for discovery). */
  parts: string[];
  apiPrefix: '' | 'api' | 'apis';
}

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function verbFor(method: string, hasName: boolean, watch: boolean): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (watch) return 'watch';
      return hasName ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return hasName ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

function nonResource(
  path: string,
  method: string,
  prefix: RequestInfo['apiPrefix'],
  parts: string[],
): RequestInfo {
  return {
    resourceRequest: false,
    path,
    verb: method === 'POST' ? 'post' : method.toLowerCase(),
    group: '',
    version: '',
    namespace: '',
    resource: '',
    name: '',
    subresource: '',
    parts,
    apiPrefix: prefix,
  };
}

export function parseRequest(method: string, url: URL): RequestInfo {
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const segments = path
    .split('/')
    .filter((s) => s !== '')
    .map(decodeURIComponent);
  const prefix = segments[0];
  if (prefix !== 'api' && prefix !== 'apis') return nonResource(path, method, '', segments);
  const parts = segments.slice(1);
  const groupless = prefix === 'api';
  const minimum = groupless ? 2 : 3;
  if (parts.length < minimum) return nonResource(path, method, prefix, parts);
  const group = groupless ? '' : parts[0]!;
  const version = groupless ? parts[0]! : parts[1]!;
  let rest = parts.slice(groupless ? 1 : 2);
  let namespace = '';
  if (
    rest[0] === 'namespaces' &&
    rest.length >= 3 &&
    !(rest.length === 3 && NAMESPACE_SUBRESOURCES.has(rest[2]!))
  ) {
    namespace = rest[1]!;
    rest = rest.slice(2);
  } else if (rest[0] === 'namespaces' && rest.length >= 2) {
    namespace = rest[1]!;
  }
  const resource = rest[0]!;
  const name = rest[1] ?? '';
  const subresource = rest.slice(2).join('/');
  const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
  return {
    resourceRequest: true,
    path,
    verb: verbFor(method, name !== '', watch),
    group,
    version,
    namespace,
    resource,
    name,
    subresource,
    parts,
    apiPrefix: prefix,
  };
}
