// An esbuild plugin shared by the CLI's bundle (scripts/build.ts) and the benchmarks' CRI floor
// (bench/sync-support.ts, buildCriPull), so that both leave the same package out the same way.
import type { Plugin } from 'esbuild';

/**
 * grpc-js loads @grpc/proto-loader (and with it protobufjs) only to serve channelz or ORCA, a
 * server's admin and load-reporting services; prepull is a client of one runtime socket. Left
 * in, it is compiled and its code cache read at every start of `sync --once` (ADR 0007). Only
 * grpc-js's import is replaced: dockerode loads them at start for its BuildKit sessions, and the
 * Docker adapter keeps them.
 */
export const grpcWithoutProtoLoader: Plugin = {
  name: 'grpc-without-proto-loader',
  setup(b) {
    b.onResolve({ filter: /^@grpc\/proto-loader$/ }, (args) =>
      args.importer.includes('node_modules/@grpc/grpc-js/')
        ? { path: '@grpc/proto-loader', namespace: 'not-bundled' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'not-bundled' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not part of prepull's build: ` + "gRPC's channelz and ORCA services are not used")});`,
      loader: 'js',
    }));
  },
};
