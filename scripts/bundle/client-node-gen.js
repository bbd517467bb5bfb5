// client-node's generated API as its config.js imports it: only for KubeConfig.makeApiClient(),
// which prepull never calls (src/kube/client.ts makes its own requests). The real module loads
// every API client and model. Only the bundle uses this file (scripts/build.ts, ADR 0005).
function notBuilt() {
  throw new Error("client-node's generated API clients are not part of prepull's build");
}

export function createConfiguration() {
  notBuilt();
}

export function ServerConfiguration() {
  notBuilt();
}
