// `prepull sync`: the engine without a cluster. Reads PrePull files, finds the runtime, wires the
// registry client, credentials, metrics and logs, then either reconciles once and exits (0 when
// every image is Present and verified where asked) or keeps reconciling and reloads the files
// when they change. Entry point only: parse, wire, run.
import { type FSWatcher, watch } from 'node:fs';
import type { PrePull } from '../api/prepull.ts';
import { loadPrePullFiles, unreadablePath } from '../api/files.ts';
import { systemClock } from '../clock.ts';
import { type SyncConfig, SYNC_USAGE, parseSyncArgs } from '../config/sync.ts';
import { PrepullError } from '../errors.ts';
import { cronScheduler } from '../reconcile/cron.ts';
import { Engine } from '../reconcile/engine.ts';
import type { CredentialProvider } from '../reconcile/types.ts';
import type { ImageReport, ReleasedImage } from '../image/report.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Keyring } from '../registry/credentials.ts';
import { detectRuntime } from '../runtime/detect.ts';
import { imageMatchesDigest } from '../image/digest.ts';
import type { ImageRuntime, RuntimeInfo } from '../runtime/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { type TelemetryServer, startTelemetryServer } from '../telemetry/server.ts';
import type { Output } from './io.ts';
import { releaseWhenQuiet } from './heap.ts';
import { commandLogger } from './log.ts';
import { type SyncResult, renderJson, renderTable } from './output.ts';
import { dockerConfigKeyring, newRegistryClient, registryHosts } from './registry.ts';

/**
 * What to do when no runtime answers, said to a person at this machine — not the agent's advice
 * about sockets mounted into a Pod.
 */
export const SYNC_RUNTIME_ADVICE = {
  probed:
    'is a container runtime running on this machine? Start it, or give its socket with ' +
    '--runtime-endpoint unix:///PATH (opening a runtime socket usually needs root)',
  given:
    'check that the runtime is running and listens on that socket, and that this user may ' +
    'open it (usually root)',
};

/** Credentials for `sync`: a docker config.json, for every image (there is no API to read secrets from). */
function dockerConfigCredentials(keyring: Keyring | undefined, log: Logger): CredentialProvider {
  if (keyring === undefined) return { forImage: () => Promise.resolve([]) };
  let warned = false;
  return {
    forImage: (image) => {
      if (image.secrets.length > 0 && !warned) {
        warned = true;
        log.warn(
          { image: image.ref },
          'prepull sync cannot read imagePullSecrets; using --docker-config credentials',
        );
      }
      return Promise.resolve(image.reference === undefined ? [] : keyring.lookup(image.reference));
    },
  };
}

function sameRelease(a: ReleasedImage, b: ReleasedImage | undefined): boolean {
  return a.time === b?.time && a.image === b.image && a.action === b.action;
}

function result(
  config: SyncConfig,
  info: RuntimeInfo,
  images: ImageReport[],
  fileErrors: PrepullError[],
  released: ReleasedImage[],
): SyncResult {
  const verifiedWhereAsked = images.every(
    (r) => r.state === 'Present' && r.reason !== 'VerifyFailed',
  );
  return {
    node: config.nodeName,
    runtime: { name: info.name, version: info.version, endpoint: info.endpoint },
    images,
    fileErrors: fileErrors.map((e) => ({ code: e.code, message: e.message })),
    ...(released.length > 0 ? { released } : {}),
    ok: verifiedWhereAsked && fileErrors.length === 0,
  };
}

interface Running {
  engine: Engine;
  runtime: ImageRuntime;
  registry: RegistryClient;
  server?: TelemetryServer;
  watchers: FSWatcher[];
  stopReleasing?: () => void;
}

async function shutdown(running: Running, log: Logger): Promise<void> {
  running.stopReleasing?.();
  for (const watcher of running.watchers) watcher.close();
  await running.engine.stop();
  await running.server?.close();
  await running.registry.close();
  await running.runtime.close();
  log.info('stopped');
}

/** Reloads the files a short while after the last change (editors write in several steps). */
function watchFiles(paths: readonly string[], onChange: () => void): FSWatcher[] {
  let timer: NodeJS.Timeout | undefined;
  const changed = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, 300);
  };
  const watchers: FSWatcher[] = [];
  for (const path of paths) {
    try {
      watchers.push(watch(path, changed));
    } catch {
      // A missing path was reported when loading; there is nothing to watch.
    }
  }
  return watchers;
}

/**
 * Every path the flags name, checked before anything connects: a mistyped `-f` is a usage error
 * (exit 2) that names it, not a run against the runtime with nothing to do. A file that goes
 * away while `sync` runs is a file error of that reload instead (`loadFiles`).
 */
function checkFilePaths(files: readonly string[]): void {
  for (const path of files) {
    const reason = unreadablePath(path);
    if (reason !== undefined) {
      throw new PrepullError('ERR_USAGE', `-f ${path}: cannot read it: ${reason}`);
    }
  }
}

function loadFiles(
  config: SyncConfig,
  log: Logger,
): { prePulls: PrePull[]; errors: PrepullError[] } {
  const loaded = loadPrePullFiles(config.files);
  for (const error of loaded.errors) log.error({ code: error.code }, error.message);
  if (loaded.skipped.length > 0)
    log.debug({ skipped: loaded.skipped }, 'skipped documents of other kinds');
  log.info(
    { prePulls: loaded.prePulls.length, invalid: loaded.errors.length },
    'read PrePull files',
  );
  return { prePulls: loaded.prePulls, errors: loaded.errors };
}

export async function runSync(
  argv: readonly string[],
  io: Output,
  signals: NodeJS.EventEmitter = process,
  detect: typeof detectRuntime = detectRuntime,
): Promise<number> {
  const config = parseSyncArgs(argv);
  if (config === 'help') {
    io.out(SYNC_USAGE);
    return 0;
  }
  checkFilePaths(config.files);
  const keyring =
    config.dockerConfig === undefined ? undefined : dockerConfigKeyring(config.dockerConfig);
  const registries = registryHosts(config);
  const log = await commandLogger(config);
  const metrics = new Metrics();
  let files = loadFiles(config, log);
  const detected = await detect({ endpoint: config.runtimeEndpoint, advice: SYNC_RUNTIME_ADVICE });
  const found = detected.found.kind;
  if (config.runtime !== undefined && config.runtime !== found) {
    await detected.runtime.close();
    throw new PrepullError(
      'ERR_USAGE',
      `--runtime ${config.runtime} was given, but ${detected.endpoint} speaks ${found}`,
    );
  }
  log.info({ skipped: detected.skipped }, detected.description);
  const info = await detected.runtime.info();
  const registry = newRegistryClient(registries, metrics);
  const engine = new Engine(
    {
      runtime: detected.runtime,
      resolver: registry,
      credentials: dockerConfigCredentials(keyring, log),
      matchesDigest: imageMatchesDigest,
      scheduler: cronScheduler,
      clock: systemClock,
      log,
      metrics,
    },
    {
      labels: config.nodeLabels,
      pullConcurrency: config.pullConcurrency,
      cleanup: config.cleanup,
    },
  );
  const running: Running = { engine, runtime: detected.runtime, registry, watchers: [] };
  if (config.metricsAddress !== undefined) {
    running.server = await startTelemetryServer(metrics, config.metricsAddress, async () => {
      try {
        await detected.runtime.info();
        return undefined;
      } catch (error) {
        return `runtime not reachable: ${error instanceof Error ? error.message : String(error)}`;
      }
    });
    log.info(
      { address: `${config.metricsAddress.host}:${running.server.port}` },
      'serving /metrics, /healthz, /readyz',
    );
  }
  // Each release is printed once, with the first result after it (the list is newest first).
  let lastPrinted: ReleasedImage | undefined;
  const print = (images: ImageReport[]): boolean => {
    const all = engine.released();
    const seen = lastPrinted === undefined ? -1 : all.findIndex((r) => sameRelease(r, lastPrinted));
    const fresh = (seen === -1 ? all : all.slice(0, seen)).reverse();
    lastPrinted = all[0] ?? lastPrinted;
    const outcome = result(config, info, images, files.errors, fresh);
    io.out(config.output === 'json' ? renderJson(outcome) : renderTable(outcome));
    return outcome.ok;
  };

  let stopping: Promise<void> | undefined;
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (signal: string): void => {
      stopping ??= shutdown(running, log);
      resolve(signal);
    };
    signals.once('SIGTERM', () => {
      onSignal('SIGTERM');
    });
    signals.once('SIGINT', () => {
      onSignal('SIGINT');
    });
  });

  engine.setPrePulls(files.prePulls);
  try {
    await engine.start();
  } catch (error) {
    // A signal during start-up closes the runtime under start() (pulls may already be under
    // way): that is the interruption, reported below, not a failure of its own.
    if (stopping === undefined) throw error;
  }
  if (config.once) {
    const settledOrSignal = await Promise.race([engine.settled(), stopped]);
    if (typeof settledOrSignal === 'string') {
      await stopping;
      log.warn({ signal: settledOrSignal }, 'interrupted before every image settled');
      print(engine.reports());
      return 1;
    }
    const ok = print(settledOrSignal);
    await shutdown(running, log);
    return ok ? 0 : 1;
  }

  // Not once shut down: a watcher opened after shutdown would keep the process alive.
  if (stopping === undefined) {
    running.watchers = watchFiles(config.files, () => {
      files = loadFiles(config, log);
      engine.setPrePulls(files.prePulls);
      void engine.settled().then(print);
    });
    void engine.settled().then(print);
    running.stopReleasing = releaseWhenQuiet((onChange) => engine.onChange(onChange));
  }
  const signal = await stopped;
  await stopping;
  log.info({ signal }, 'exiting');
  return 0;
}
