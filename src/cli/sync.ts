// `prepull sync`: the engine without a cluster. Reads PrePull files, finds the runtime, wires the
// registry client, credentials, metrics and logs, then either reconciles once and exits (0 when
// every image is Present and verified where asked) or keeps reconciling and reloads the files
// when they change. Entry point only: parse, wire, run.
import { type FSWatcher, watch } from 'node:fs';
import { Writable } from 'node:stream';
import type { PrePull } from '../api/prepull.ts';
import { loadPrePullFiles, unreadablePath } from '../api/files.ts';
import { type Clock, systemClock } from '../clock.ts';
import { type SyncConfig, SYNC_USAGE, parseSyncArgs } from '../config/sync.ts';
import { PrepullError } from '../errors.ts';
import { cronScheduler } from '../reconcile/cron.ts';
import { Engine } from '../reconcile/engine.ts';
import type { CredentialProvider } from '../reconcile/types.ts';
import type { DiskStatus } from '../api/nodeimagecache.ts';
import type { ImageReport, ReleasedImage } from '../image/report.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { Keyring } from '../registry/credentials.ts';
import type { detectRuntime } from '../runtime/detect.ts';
import { imageMatchesDigest } from '../image/digest.ts';
import type { ImageRuntime, RuntimeInfo } from '../runtime/types.ts';
import { type ConnectedRuntime, connectRuntime, waitForRuntime } from '../runtime/wait.ts';
import type { Logger } from '../telemetry/logger.ts';
import { Metrics } from '../telemetry/metrics.ts';
import type { TelemetryServer } from '../telemetry/server.ts';
import { revision, version } from './build-info.ts';
import { serveRuntimeTelemetry } from './health.ts';
import type { Output } from './io.ts';
import { releaseWhenQuiet } from './heap.ts';
import { commandLogger } from './log.ts';
import { type SyncResult, renderJson, renderTable } from './output.ts';
import { ProgressView } from './progress.ts';
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
  extras: { released: ReleasedImage[]; disk: DiskStatus | undefined },
): SyncResult {
  const { released, disk } = extras;
  const verifiedWhereAsked = images.every(
    (r) => r.state === 'Present' && r.reason !== 'VerifyFailed',
  );
  return {
    node: config.nodeName,
    runtime: { name: info.name, version: info.version, endpoint: info.endpoint },
    images,
    fileErrors: fileErrors.map((e) => ({ code: e.code, message: e.message })),
    ...(released.length > 0 ? { released } : {}),
    ...(disk !== undefined ? { disk } : {}),
    ok: verifiedWhereAsked && fileErrors.length === 0,
  };
}

/** What a `sync` holds open; the engine and its clients only once the runtime answered. */
interface Running {
  server?: TelemetryServer | undefined;
  connected?: { engine: Engine; runtime: ImageRuntime; registry: RegistryClient };
  watchers: FSWatcher[];
  stopReleasing?: () => void;
  stopProgress?: (() => void) | undefined;
}

async function shutdown(running: Running, log: Logger): Promise<void> {
  running.stopReleasing?.();
  running.stopProgress?.();
  for (const watcher of running.watchers) watcher.close();
  await running.connected?.engine.stop();
  await running.server?.close();
  await running.connected?.registry.close();
  await running.connected?.runtime.close();
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
  for (const warning of loaded.warnings) log.warn(warning);
  if (loaded.skipped.length > 0)
    log.debug({ skipped: loaded.skipped }, 'skipped documents of other kinds');
  log.info(
    { prePulls: loaded.prePulls.length, invalid: loaded.errors.length },
    'read PrePull files',
  );
  return { prePulls: loaded.prePulls, errors: loaded.errors };
}

export interface SyncDependencies {
  detect?: typeof detectRuntime;
  clock?: Clock;
  /** The root logger (default: JSON lines on stderr at --log-level). */
  log?: Logger;
  /** How long to wait between attempts to reach a runtime that is not there yet (watch mode). */
  runtimeBackoff?: { initialMs: number; maxMs: number };
}

interface Reached {
  connected: ConnectedRuntime | undefined;
  /** The runtime did not answer at once: sync waited for it. */
  waited: boolean;
}

/**
 * The runtime, found and asked for its facts. With --once a failure is the answer (a bootstrap
 * script wants the reason now); watching, sync waits for the runtime. `connected` is undefined
 * when a signal came first (nothing is left open then).
 */
async function reachRuntime(
  config: SyncConfig,
  dependencies: SyncDependencies,
  parts: { clock: Clock; log: Logger; metrics: Metrics },
  signal: AbortSignal,
): Promise<Reached> {
  const connect = (): Promise<ConnectedRuntime> =>
    connectRuntime({
      endpoint: config.runtimeEndpoint,
      protocol: config.runtime,
      advice: SYNC_RUNTIME_ADVICE,
      ...(dependencies.detect !== undefined ? { detect: dependencies.detect } : {}),
    });
  if (config.once) {
    const connected = await connect();
    parts.metrics.runtimeUp.set(1);
    if (!signal.aborted) return { connected, waited: false };
    await connected.detected.runtime.close();
    return { connected: undefined, waited: false };
  }
  let waited = false;
  const connected = await waitForRuntime(connect, {
    ...parts,
    signal,
    backoff: dependencies.runtimeBackoff,
    onUp: (up) => {
      waited ||= !up;
      parts.metrics.runtimeUp.set(up ? 1 : 0);
    },
  });
  return { connected, waited };
}

/**
 * Pull progress for people: live lines on stderr when it is a terminal; otherwise plain lines
 * with the table on stdout; none with `-o json`, whose stdout is one document (the engine's
 * "pull progress" log lines say it there).
 */
function progressView(config: SyncConfig, io: Output, clock: Clock): ProgressView | undefined {
  if (io.errTerminal !== undefined) {
    return new ProgressView({ clock, write: io.err, terminal: io.errTerminal });
  }
  return config.output === 'table' ? new ProgressView({ clock, write: io.out }) : undefined;
}

/**
 * The log on stderr in the format --log-format asks for (else text on a terminal, JSON
 * elsewhere); on a terminal through the view, which keeps its live lines below it.
 */
function syncLogger(
  config: SyncConfig,
  io: Output,
  view: ProgressView | undefined,
): Promise<Logger> {
  const terminal = { stderrIsTerminal: io.errTerminal !== undefined, env: process.env };
  if (io.errTerminal === undefined || view === undefined) return commandLogger(config, terminal);
  // A stream, not a bare { write }: pino-pretty pipes into its destination.
  const throughView = new Writable({
    write(chunk: Buffer, _encoding, done) {
      view.print(chunk.toString());
      done();
    },
  });
  return commandLogger(config, terminal, throughView);
}

/** Shows the engine's pulls in `view`, if any, until the returned function is called. */
function followProgress(engine: Engine, view: ProgressView | undefined): (() => void) | undefined {
  if (view === undefined) return undefined;
  const stop = engine.onChange((reports) => {
    view.update(reports);
  });
  const timer = setInterval(() => {
    view.tick();
  }, 1000);
  timer.unref();
  return () => {
    stop();
    clearInterval(timer);
    view.close();
  };
}

/**
 * Every file the flags name, read or checked before anything connects, so a mistyped path is a
 * usage error (exit 2) naming it: the -f paths, the docker config, the registry CA files.
 */
function readFlagFiles(config: SyncConfig): {
  keyring: Keyring | undefined;
  registries: ReturnType<typeof registryHosts>;
} {
  checkFilePaths(config.files);
  return {
    keyring:
      config.dockerConfig === undefined ? undefined : dockerConfigKeyring(config.dockerConfig),
    registries: registryHosts(config),
  };
}

/**
 * Prints a result (table or JSON) and says whether it is ok. Each release is printed once, with
 * the first result after it (the engine's list is newest first).
 */
function resultPrinter(parts: {
  config: SyncConfig;
  info: RuntimeInfo;
  engine: Engine;
  io: Output;
  view: ProgressView | undefined;
  fileErrors: () => PrepullError[];
}): (images: ImageReport[]) => boolean {
  const { config, info, engine, io, view } = parts;
  let lastPrinted: ReleasedImage | undefined;
  return (images) => {
    const all = engine.released();
    const seen = lastPrinted === undefined ? -1 : all.findIndex((r) => sameRelease(r, lastPrinted));
    const fresh = (seen === -1 ? all : all.slice(0, seen)).reverse();
    lastPrinted = all[0] ?? lastPrinted;
    const outcome = result(config, info, images, parts.fileErrors(), {
      released: fresh,
      disk: engine.disk(),
    });
    view?.clear();
    io.out(config.output === 'json' ? renderJson(outcome) : renderTable(outcome));
    return outcome.ok;
  };
}

export async function runSync(
  argv: readonly string[],
  io: Output,
  signals: NodeJS.EventEmitter = process,
  dependencies: SyncDependencies = {},
): Promise<number> {
  const config = parseSyncArgs(argv);
  if (config === 'help') {
    io.out(SYNC_USAGE);
    return 0;
  }
  const { keyring, registries } = readFlagFiles(config);
  const clock = dependencies.clock ?? systemClock;
  const view = progressView(config, io, clock);
  const log = dependencies.log ?? (await syncLogger(config, io, view));
  const metrics = new Metrics({
    build: { version: version(), revision: revision(), command: 'sync' },
  });
  let files = loadFiles(config, log);

  const running: Running = { watchers: [] };
  const aborted = new AbortController();
  let stopping: Promise<void> | undefined;
  // A function, so checks after an await are not narrowed away by the compiler.
  const isStopping = (): boolean => stopping !== undefined;
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (signal: string): void => {
      aborted.abort();
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

  running.server = await serveRuntimeTelemetry(
    config.metricsAddress,
    metrics,
    { runtime: () => running.connected?.runtime },
    log,
  );
  const reached = await reachRuntime(
    config,
    dependencies,
    { clock, log, metrics },
    aborted.signal,
  ).catch(async (error: unknown) => {
    stopping ??= shutdown(running, log);
    await stopping;
    throw error;
  });
  if (reached.connected === undefined) {
    // A signal came before the runtime answered.
    const signal = await stopped;
    await stopping;
    log.info({ signal }, 'exiting');
    return config.once ? 1 : 0;
  }
  const { detected, info } = reached.connected;
  log.info({ skipped: detected.skipped }, detected.description);
  metrics.setRuntime(info.name);
  // The files may have changed while the runtime was awaited (they are watched only from now).
  if (reached.waited) files = loadFiles(config, log);
  const registry = newRegistryClient(registries, metrics);
  const engine = new Engine(
    {
      runtime: detected.runtime,
      resolver: registry,
      credentials: dockerConfigCredentials(keyring, log),
      matchesDigest: imageMatchesDigest,
      scheduler: cronScheduler,
      clock,
      log,
      metrics,
    },
    {
      nodeName: config.nodeName,
      labels: config.nodeLabels,
      pullConcurrency: config.pullConcurrency,
      stallTimeoutMs: config.stallTimeoutMs,
      cleanup: config.cleanup,
      disk: config.disk,
      // --once fails fast: a runtime that stops answering fails the attempts and the run.
      waitForRuntime: !config.once,
    },
  );
  running.connected = { engine, runtime: detected.runtime, registry };
  running.stopProgress = followProgress(engine, view);
  const print = resultPrinter({
    config,
    info,
    engine,
    io,
    view,
    fileErrors: () => files.errors,
  });

  engine.setPrePulls(files.prePulls);
  try {
    await engine.start();
  } catch (error) {
    // A signal during start-up closes the runtime under start() (pulls may already be under
    // way): that is the interruption, reported below, not a failure of its own.
    if (!isStopping()) throw error;
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
  if (!isStopping()) {
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
