// The adapter for containerd: CRI for everything kubelet does, plus containerd's native pinning,
// events and progress on the same socket and connection.

import type { Clock } from '../../clock.ts';
import { GrpcConnection } from '../cri/grpc.ts';
import { CriRuntime } from '../cri/runtime.ts';
import { ContainerdExtras } from './extras.ts';
import { ContainerdNative } from './native.ts';

export interface ContainerdRuntimeOptions {
  /** "unix:///run/containerd/containerd.sock" or the bare path. */
  endpoint: string;
  clock?: Clock;
  callTimeoutMs?: number;
  /** How often pull progress is sampled. */
  progressIntervalMs?: number;
  /** containerd namespace of kubelet's images; "k8s.io" unless CRI was configured otherwise. */
  namespace?: string;
  connection?: GrpcConnection;
}

export function containerdRuntime(options: ContainerdRuntimeOptions): CriRuntime {
  const connection = options.connection ?? new GrpcConnection(options.endpoint);
  const native = new ContainerdNative({
    connection,
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    ...(options.callTimeoutMs === undefined ? {} : { callTimeoutMs: options.callTimeoutMs }),
  });
  const extras = new ContainerdExtras({
    native,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.progressIntervalMs === undefined
      ? {}
      : { progressIntervalMs: options.progressIntervalMs }),
  });
  return new CriRuntime({
    endpoint: options.endpoint,
    connection,
    extras,
    ...(options.callTimeoutMs === undefined ? {} : { callTimeoutMs: options.callTimeoutMs }),
  });
}
