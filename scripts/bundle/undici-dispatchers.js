// undici's Agent and ProxyAgent without undici's index.js, which loads every part of undici
// (fetch, WebSocket, mocks, caches) on import. Like index.js, this puts the request API
// (request, stream, pipeline, connect, upgrade) on Dispatcher.prototype: ProxyAgent tunnels
// through `client.connect`. Only the bundle uses this file (scripts/build.ts, ADR 0005).
import api from 'undici/lib/api/index.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import ProxyAgent from 'undici/lib/dispatcher/proxy-agent.js';

Object.assign(Dispatcher.prototype, api);

export { Agent, ProxyAgent };
