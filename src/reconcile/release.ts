// Releasing what no PrePull wants any more (docs/adr/0014-controller-and-admission.md, "Release
// (agent)"). An image leaves the node's desired set — dropped from a PrePull, its PrePull deleted,
// the node no longer selected — and prepull undoes what it did, and only that: the pin it set
// comes off; with cleanup Remove (every PrePull that wanted it says so, or the engine's default)
// an image it pulled is removed too, unless a container uses it, another wanted image shares its
// image ID, it is the sandbox image, or it carries a tag prepull did not put there. An image that
// was on the node before prepull is never removed, a pin someone else set never taken off.
//
// Each image is released once, when it leaves; a failure is logged and counted, not retried. The
// provenance (what prepull pulled, what it pinned) lives on the engine's entries, goes into the
// NodeImageCache, and comes back through remember() at the next start, where images the last
// status listed and no PrePull wants now are released (an agent that was down meanwhile).
import { MAX_RELEASED } from '../api/nodeimagecache.ts';
import type { CachedImage } from '../api/nodeimagecache.ts';
import type { CleanupPolicy } from '../api/prepull.ts';
import { parseReference } from '../image/reference.ts';
import type { ReleaseAction, ReleasedImage } from '../image/report.ts';
import type { RuntimeImage } from '../runtime/types.ts';
import { runtimeCall } from './observe.ts';
import { type EngineDeps, type Entry, errorInfo } from './types.ts';

/** What prepull did to an image: the image IDs it pulled and pinned under the name. */
export interface Provenance {
  pulledId?: string;
  pinnedId?: string;
  cleanup?: CleanupPolicy;
}

/** What the engine is given of the node's last status at start. */
export interface PreviousStatus {
  images?: readonly CachedImage[];
  released?: readonly ReleasedImage[];
}

/** Provenance kept for images released but left on the node, should they be wanted again. */
const REMEMBERED_LIMIT = 4096;
/** How often a release waits for a pull of the same image still in flight to end. */
const PULL_POLL_MS = 250;

export class Releaser {
  readonly #deps: EngineDeps;
  readonly #cleanup: () => CleanupPolicy;
  readonly #entries: ReadonlyMap<string, Entry>;
  readonly #sandboxImage: () => string | undefined;
  readonly #onChange: () => void;
  readonly #remembered = new Map<string, Provenance>();
  /** Images the last status listed: released at start unless wanted. */
  #listed: string[] = [];
  #released: ReleasedImage[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stop = new AbortController();

  constructor(
    deps: EngineDeps,
    parts: {
      cleanup: () => CleanupPolicy;
      entries: ReadonlyMap<string, Entry>;
      sandboxImage: () => string | undefined;
      onChange: () => void;
    },
  ) {
    this.#deps = deps;
    this.#cleanup = parts.cleanup;
    this.#entries = parts.entries;
    this.#sandboxImage = parts.sandboxImage;
    this.#onChange = parts.onChange;
  }

  /** Takes the provenance and releases of the node's last status (before start). */
  remember(previous: PreviousStatus | undefined): void {
    for (const image of previous?.images ?? []) {
      const id = image.imageId;
      this.#remember(image.image, {
        ...(image.pulledByPrepull === true && id !== undefined ? { pulledId: id } : {}),
        ...(image.pinnedByPrepull === true && id !== undefined ? { pinnedId: id } : {}),
        ...(image.cleanup !== undefined ? { cleanup: image.cleanup } : {}),
      });
      this.#listed.push(image.image);
    }
    this.#released = [...(previous?.released ?? [])].slice(0, MAX_RELEASED);
  }

  /** Gives a new entry what prepull did to its image before (last status, or an earlier release). */
  recall(entry: Entry): void {
    const known = this.#remembered.get(entry.desired.ref);
    if (known === undefined) return;
    this.#remembered.delete(entry.desired.ref);
    if (known.pulledId !== undefined) entry.pulledId = known.pulledId;
    if (known.pinnedId !== undefined) entry.pinnedId = known.pinnedId;
  }

  /** At start, once the wanted set is known: releases what the last status listed and no one wants. */
  releaseForgotten(): void {
    const listed = this.#listed;
    this.#listed = [];
    for (const ref of listed) {
      if (this.#entries.has(ref)) continue;
      const known = this.#remembered.get(ref);
      if (known === undefined) continue;
      this.#remembered.delete(ref);
      this.#track(this.#release(ref, known));
    }
  }

  /** `entry` left the desired set: release its image (in the background). */
  release(entry: Entry): void {
    this.#track(
      (async () => {
        // A pull of it may still be running: what it brings is prepull's too.
        const deadline = this.#deps.clock.now() + entry.desired.timeoutSeconds * 1000;
        while (entry.history.pulling && this.#deps.clock.now() < deadline) {
          await this.#deps.clock.sleep(PULL_POLL_MS, this.#stop.signal);
        }
        await this.#release(entry.desired.ref, {
          ...(entry.pulledId !== undefined ? { pulledId: entry.pulledId } : {}),
          ...(entry.pinnedId !== undefined ? { pinnedId: entry.pinnedId } : {}),
          cleanup: entry.desired.cleanup,
        });
      })(),
    );
  }

  /** What was released, newest first (the last MAX_RELEASED, the last status's included). */
  released(): ReleasedImage[] {
    return this.#released.map((r) => ({ ...r }));
  }

  /** Resolves once no release is in flight. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Stops waiting for pulls; releases already calling the runtime finish. */
  stop(): void {
    this.#stop.abort();
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch(() => undefined).finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  async #release(ref: string, known: Provenance): Promise<void> {
    if (this.#stop.signal.aborted) return;
    const { runtime, metrics, log } = this.#deps;
    if (this.#wantedAgain(ref, known)) return;
    let image: RuntimeImage | undefined;
    try {
      image = await runtimeCall(metrics, 'status', () => runtime.imageStatus(ref));
      if (image === undefined) {
        log.info({ image: ref }, 'no longer required, and already gone from the node');
        return;
      }
      const kept = this.#keptFor(ref, image);
      if (kept !== undefined) this.#record(ref, 'Kept', kept, known, image);
      else await this.#undo(ref, image, known);
    } catch (error) {
      const err = errorInfo(error);
      metrics.imagesReleased.inc({ action: 'Failed' });
      log.warn({ image: ref, err }, 'could not release an image no longer required');
      this.#add({
        image: ref,
        action: 'Kept',
        reason: `failed: ${err.message}`,
        time: this.#now(),
      });
      if (image !== undefined) this.#remember(ref, known);
      this.#onChange();
    }
  }

  /** Removes the image where allowed, otherwise takes prepull's pin off; records what it did. */
  async #undo(ref: string, image: RuntimeImage, known: Provenance): Promise<void> {
    const { runtime, metrics } = this.#deps;
    const reasons: string[] = [];
    if ((known.cleanup ?? 'Unpin') === 'Remove' || this.#cleanup() === 'Remove') {
      const why = await this.#whyNotRemove(ref, image, known);
      if (why === undefined) {
        if (this.#wantedAgain(ref, known)) return;
        await runtimeCall(metrics, 'remove', () => runtime.remove(ref));
        this.#record(ref, 'Removed', undefined, {}, undefined);
        return;
      }
      reasons.push(`not removed: ${why}`);
    }
    const pin = this.#pinToTakeOff(image, known);
    if (pin === undefined) {
      if (this.#wantedAgain(ref, known)) return;
      await runtimeCall(metrics, 'unpin', () => runtime.unpin(ref));
      const unpinned = { ...known };
      delete unpinned.pinnedId;
      this.#record(ref, 'Unpinned', reasons.join('; ') || undefined, unpinned, image);
      return;
    }
    if (reasons.length === 0) reasons.push(pin);
    this.#record(ref, 'Kept', reasons.join('; '), known, image);
  }

  /** Why the image stays as it is, whatever the policy: the sandbox, or shared with a wanted one. */
  #keptFor(ref: string, image: RuntimeImage): string | undefined {
    const sandbox = this.#sandboxImage();
    if (sandbox !== undefined && canonical(sandbox) === ref) return "the runtime's sandbox image";
    for (const entry of this.#entries.values()) {
      if (entry.image?.id === image.id) {
        return `a wanted image shares its image ID: ${entry.desired.ref}`;
      }
    }
    return undefined;
  }

  /** Why prepull may not remove it, or undefined when it may. */
  async #whyNotRemove(
    ref: string,
    image: RuntimeImage,
    known: Provenance,
  ): Promise<string | undefined> {
    if (known.pulledId === undefined) return 'prepull did not pull it';
    if (known.pulledId !== image.id) return 'its tag names an image prepull did not pull';
    const others = image.repoTags.filter((tag) => tag !== ref);
    if (others.length > 0) return `it is also tagged ${others.join(', ')}`;
    const { runtime, metrics } = this.#deps;
    const inUse = await runtimeCall(metrics, 'containers', () => runtime.imagesInUse());
    if (inUse.has(image.id)) return 'a container uses it';
    return undefined;
  }

  /** Undefined when prepull's pin is to come off; otherwise why the pin stays as it is. */
  #pinToTakeOff(image: RuntimeImage, known: Provenance): string | undefined {
    if (!this.#deps.runtime.capabilities.pin) return 'the runtime does not pin images';
    // Pinned by prepull yet reported unpinned: another client took the label off some of its
    // records (runtimes.md); the rest still carry prepull's label and keep kubelet's GC away.
    if (known.pinnedId === image.id) return undefined;
    return image.pinned ? 'prepull did not pin it' : 'not pinned';
  }

  /** Wanted again meanwhile: nothing to release; the new entry keeps what prepull did. */
  #wantedAgain(ref: string, known: Provenance): boolean {
    const entry = this.#entries.get(ref);
    if (entry === undefined) return false;
    if (known.pulledId !== undefined) entry.pulledId ??= known.pulledId;
    if (known.pinnedId !== undefined) entry.pinnedId ??= known.pinnedId;
    return true;
  }

  #record(
    ref: string,
    action: ReleaseAction,
    reason: string | undefined,
    known: Provenance,
    image: RuntimeImage | undefined,
  ): void {
    this.#deps.metrics.imagesReleased.inc({ action });
    this.#deps.log.info(
      { image: ref, action, ...(reason !== undefined ? { reason } : {}) },
      'released an image no longer required',
    );
    this.#add({
      image: ref,
      action,
      ...(reason !== undefined ? { reason } : {}),
      time: this.#now(),
    });
    // Still on the node: should it be wanted again, what prepull pulled is still known.
    if (image !== undefined) this.#remember(ref, known);
    this.#onChange();
  }

  #add(record: ReleasedImage): void {
    this.#released = [record, ...this.#released].slice(0, MAX_RELEASED);
  }

  #remember(ref: string, known: Provenance): void {
    if (known.pulledId === undefined && known.pinnedId === undefined) return;
    this.#remembered.delete(ref);
    this.#remembered.set(ref, known);
    if (this.#remembered.size > REMEMBERED_LIMIT) {
      const oldest = this.#remembered.keys().next().value;
      if (oldest !== undefined) this.#remembered.delete(oldest);
    }
  }

  #now(): string {
    return new Date(this.#deps.clock.now()).toISOString();
  }
}

function canonical(ref: string): string | undefined {
  try {
    return parseReference(ref).canonical;
  } catch {
    return undefined;
  }
}
