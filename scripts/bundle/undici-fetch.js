// undici's fetch without undici's index.js (see undici-dispatchers.js). Only the bundle uses
// this file (scripts/build.ts, ADR 0005).
import './undici-dispatchers.js';
import fetchModule from 'undici/lib/web/fetch/index.js';

export function fetch(init, options = undefined) {
  return fetchModule.fetch(init, options).catch((error) => {
    if (error && typeof error === 'object') Error.captureStackTrace(error, fetch);
    throw error;
  });
}
