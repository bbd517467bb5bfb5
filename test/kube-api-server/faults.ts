// Fault injection that tests hold: failures for matching requests, latency, pauses, and the
// hooks that drop watches or compact history (wired by the server).
import { setTimeout as sleep } from 'node:timers/promises';

export interface FailRule {
  /** HTTP method to match (any when omitted). */
  method?: string;
  /** Substring or pattern the request path (without query) must match (any when omitted). */
  path?: string | RegExp;
  /** Match only watch requests (true), only non-watch (false), or both (omitted). */
  watch?: boolean;
  /** Status code to answer: 500, 503, 429, 409, … */
  code: number;
  /** How many matching requests fail. */
  times: number;
  /** Retry-After seconds (sent as header and details.retryAfterSeconds). */
  retryAfterSeconds?: number;
}

export interface RequestShape {
  method: string;
  path: string;
  watch: boolean;
}

function ruleMatches(rule: FailRule, r: RequestShape): boolean {
  if (rule.method !== undefined && rule.method.toUpperCase() !== r.method) return false;
  if (rule.watch !== undefined && rule.watch !== r.watch) return false;
  if (rule.path === undefined) return true;
  return typeof rule.path === 'string' ? r.path.includes(rule.path) : rule.path.test(r.path);
}

export class Faults {
  readonly #rules: FailRule[] = [];
  #latencyMs = 0;
  #paused: Promise<void> | undefined;
  #resume: (() => void) | undefined;
  /** Set by the server: closes every open watch. */
  dropWatchesHook: () => number = () => 0;
  /** Set by the server: forgets watch history. */
  compactHook: () => void = () => undefined;

  /** Fails the next `times` requests matching the rule with `code`. */
  failNext(rule: FailRule): void {
    this.#rules.push({ ...rule });
  }

  /** Delay added before every request is handled. */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /** Closes every open watch stream (clients see a normal end of stream). Returns how many. */
  dropWatches(): number {
    return this.dropWatchesHook();
  }

  /** Drops watch history: the next watch from an older resourceVersion gets 410 Expired. */
  compact(): void {
    this.compactHook();
  }

  /** Holds every new request until resume(). */
  pause(): void {
    this.#paused ??= new Promise((resolve) => {
      this.#resume = resolve;
    });
  }

  resume(): void {
    this.#resume?.();
    this.#paused = undefined;
    this.#resume = undefined;
  }

  clear(): void {
    this.#rules.length = 0;
    this.#latencyMs = 0;
    this.resume();
  }

  /** Waits out pause and latency; returns the injected failure for this request, if any. */
  async before(r: RequestShape): Promise<FailRule | undefined> {
    if (this.#paused !== undefined) await this.#paused;
    if (this.#latencyMs > 0) await sleep(this.#latencyMs);
    const i = this.#rules.findIndex((rule) => ruleMatches(rule, r));
    if (i < 0) return undefined;
    const rule = this.#rules[i]!;
    rule.times--;
    if (rule.times <= 0) this.#rules.splice(i, 1);
    return rule;
  }
}
