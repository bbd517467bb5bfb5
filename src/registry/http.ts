// The parts of undici the registry transport uses, in a module of their own so the transport
// can load them with its first request (transport.ts) — and so the bundle (scripts/build.ts)
// sees by name which parts of undici they are.
export { Agent, ProxyAgent, request } from 'undici';
