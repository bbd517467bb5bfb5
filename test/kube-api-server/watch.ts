// Watch streams: newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) from
// a resourceVersion, replayed from history then live, filtered by namespace and selectors (an
// object leaving a selector is DELETED for that watcher, entering it ADDED), ended by
// timeoutSeconds, and a 410 Expired ERROR event when the resourceVersion is too old.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { meta, type JsonObject } from './json.ts';
import { selects } from './objects.ts';
import type { Objects } from './objects.ts';
import { apiVersionOf, typeKey, type ResourceType } from './resources.ts';
import type { Selector } from './selectors.ts';
import { expired } from './status.ts';
import { toTable, type TableRequest } from './tables.ts';
import type { Change, ChangeType } from './store.ts';

export interface WatchRequest {
  t: ResourceType;
  namespace: string;
  labels: Selector;
  fields: Selector;
  /** "" or "0": send the current state first; a number: resume after it. */
  resourceVersion: string;
  bookmarks: boolean;
  timeoutMs: number;
  /**
   * Asked for `as=Table`: each event's object is a Table of one row, and only the first event's
   * Table has columnDefinitions (kube-apiserver's watchEmbeddedEncoder sets NoHeaders after it).
   */
  table?: TableRequest;
}

export interface WatchOptions {
  bookmarkIntervalMs: number;
  /**
   * Under load, how long events may wait to be written together: after a flush, the next one
   * comes no sooner than this (default 10 ms). The first event after a quiet spell goes out at
   * the end of its event-loop turn, as before.
   */
  flushIntervalMs?: number;
}

const DEFAULT_FLUSH_INTERVAL_MS = 25;

function line(type: string, object: JsonObject): string {
  return `${JSON.stringify({ type, object })}\n`;
}

/** One event line as a whole chunk of the chunked response body: size in hex, CRLF, line, CRLF. */
function frame(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([
    Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'),
    body,
    Buffer.from('\r\n', 'latin1'),
  ]);
}

export class WatchHub {
  readonly #objects: Objects;
  readonly #options: WatchOptions;
  readonly #open = new Set<() => void>();
  /** Sockets written to since the last flush: corked, so one turn's events go out together. */
  readonly #corked = new Set<Socket>();
  #flushScheduled = false;
  #lastFlush = -Infinity;

  constructor(objects: Objects, options: WatchOptions) {
    this.#objects = objects;
    this.#options = options;
  }

  get openCount(): number {
    return this.#open.size;
  }

  /** Ends every open watch stream; returns how many there were. */
  dropAll(): number {
    const closers = [...this.#open];
    for (const close of closers) close();
    return closers.length;
  }

  /**
   * Writes an event, already framed as a chunk, straight to the watcher's socket: the same bytes
   * for every watcher, so the HTTP layer's per-write work (sizing and encoding the line, framing
   * the chunk) is done once per event, not once per watcher. Sockets stay corked until the next
   * flush — the end of this event-loop turn, or under load up to flushIntervalMs after the last
   * flush — so the events of that span reach each watcher as one TLS record and one syscall
   * instead of one each: with a thousand watchers, those per-event writes are most of the
   * server's work. The response's own end() still writes the last chunk.
   */
  #write(res: ServerResponse, chunk: Buffer): void {
    const socket = res.socket;
    if (socket === null || socket.destroyed || res.writableEnded) return;
    if (!this.#corked.has(socket)) {
      socket.cork();
      this.#corked.add(socket);
    }
    socket.write(chunk);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const flush = (): void => {
      this.#flushScheduled = false;
      this.#lastFlush = performance.now();
      for (const s of this.#corked) s.uncork();
      this.#corked.clear();
    };
    const interval = this.#options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    const wait = this.#lastFlush + interval - performance.now();
    if (wait <= 0) setImmediate(flush);
    else setTimeout(flush, wait);
  }

  #uncork(res: ServerResponse): void {
    const socket = res.socket;
    if (socket !== null && this.#corked.delete(socket)) socket.uncork();
  }

  serve(req: WatchRequest, res: ServerResponse): void {
    const { t } = req;
    const apiVersion = apiVersionOf(t);
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-cache, private',
      'transfer-encoding': 'chunked',
    });
    res.flushHeaders();
    let replay: Change[] | undefined = [];
    if (req.resourceVersion !== '' && req.resourceVersion !== '0') {
      const rv = Number(req.resourceVersion);
      replay = this.#objects.store.changesSince(typeKey(t), Number.isFinite(rv) ? rv : 0);
      if (replay === undefined) {
        const compacted = this.#objects.store.compactedResourceVersion;
        const status = expired(`too old resource version: ${req.resourceVersion} (${compacted})`);
        res.end(line('ERROR', status.status as unknown as JsonObject));
        return;
      }
    }
    const inScope = (obj: JsonObject): boolean =>
      (!t.namespaced || req.namespace === '' || meta(obj).namespace === req.namespace) &&
      selects(req.labels, req.fields, obj);
    let headersSent = false;
    const printed = (type: string, object: JsonObject): Buffer => {
      const table = req.table!;
      const row = toTable(t, object, { ...table, noHeaders: headersSent });
      headersSent = true;
      return frame(line(type, row));
    };
    const send = (change: Change): void => {
      const type = transition(change, inScope);
      if (type === undefined) return;
      if (req.table !== undefined) this.#write(res, printed(type, change.object));
      else this.#write(res, serialized(change, type, apiVersion, t.kind));
    };
    if (req.resourceVersion === '' || req.resourceVersion === '0') {
      for (const obj of this.#objects.store.list(typeKey(t))) {
        if (!inScope(obj)) continue;
        if (req.table !== undefined) this.#write(res, printed('ADDED', obj));
        else this.#write(res, frame(line('ADDED', { apiVersion, kind: t.kind, ...obj })));
      }
    }
    for (const change of replay) send(change);
    const unsubscribe = this.#objects.store.watch({ typeKey: typeKey(t), deliver: send });
    const timers: NodeJS.Timeout[] = [];
    const close = (): void => {
      unsubscribe();
      for (const timer of timers) clearTimeout(timer);
      this.#open.delete(close);
      this.#uncork(res);
      if (!res.writableEnded) res.end();
    };
    this.#open.add(close);
    timers.push(setTimeout(close, req.timeoutMs));
    if (req.bookmarks) {
      const bookmark = (): void => {
        const rv = String(this.#objects.store.resourceVersion);
        const object = { kind: t.kind, apiVersion, metadata: { resourceVersion: rv } };
        // Bookmarks go through the same transform as every event in kube-apiserver.
        this.#write(
          res,
          req.table !== undefined ? printed('BOOKMARK', object) : frame(line('BOOKMARK', object)),
        );
      };
      timers.push(setInterval(bookmark, this.#options.bookmarkIntervalMs));
    }
    res.on('close', close);
  }
}

/** What a watcher sees of a change, given whether objects are in its scope. */
function transition(change: Change, inScope: (o: JsonObject) => boolean): ChangeType | undefined {
  const now = inScope(change.object);
  if (change.type === 'ADDED') return now ? 'ADDED' : undefined;
  const before = change.previous === undefined ? now : inScope(change.previous);
  if (change.type === 'DELETED') return before ? 'DELETED' : undefined;
  if (before && now) return 'MODIFIED';
  if (now) return 'ADDED';
  return before ? 'DELETED' : undefined;
}

/** Each event is serialized and framed once per (type, version) and shared by every watcher. */
function serialized(change: Change, type: ChangeType, apiVersion: string, kind: string): Buffer {
  change.frames ??= [];
  for (const f of change.frames) if (f.type === type && f.apiVersion === apiVersion) return f.frame;
  const framed = frame(line(type, { apiVersion, kind, ...change.object }));
  change.frames.push({ type, apiVersion, frame: framed });
  return framed;
}
