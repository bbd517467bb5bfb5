// undici's top-level `request(url, { dispatcher, ... })` without undici's index.js, which loads
// every part of undici (fetch, WebSocket, mocks, caches) on import. The same steps as index.js's
// makeDispatcher(api.request); only the bundle uses this file (scripts/build.ts, ADR 0005).
import './undici-dispatchers.js';
import apiRequest from 'undici/lib/api/api-request.js';
import errors from 'undici/lib/core/errors.js';
import util from 'undici/lib/core/util.js';
import global from 'undici/lib/global.js';

export function request(url, opts) {
  if (opts != null && typeof opts !== 'object') {
    throw new errors.InvalidArgumentError('invalid opts');
  }
  let target;
  if (opts?.path != null) {
    if (typeof opts.path !== 'string') throw new errors.InvalidArgumentError('invalid opts.path');
    const path = opts.path.startsWith('/') ? opts.path : `/${opts.path}`;
    target = new URL(util.parseOrigin(url).origin + path);
  } else {
    target = util.parseURL(url);
  }
  const options = opts ?? (typeof url === 'object' ? url : {});
  const { agent, dispatcher = global.getGlobalDispatcher(), ...rest } = options;
  if (agent) {
    throw new errors.InvalidArgumentError('unsupported opts.agent. Did you mean opts.client?');
  }
  return apiRequest.call(dispatcher, {
    ...rest,
    origin: target.origin,
    path: target.search ? `${target.pathname}${target.search}` : target.pathname,
    method: options.method || (options.body ? 'PUT' : 'GET'),
  });
}
