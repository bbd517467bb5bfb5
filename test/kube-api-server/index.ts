// The Kubernetes API test server's public surface for tests and benchmarks.
export { KubeApiServer, type KubeApiServerOptions } from './server.ts';
export type { FailRule } from './faults.ts';
export type { Count, RequestRecord } from './accounting.ts';
export type { UserInfo } from './identity.ts';
