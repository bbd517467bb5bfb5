// Request accounting for tests and benchmarks: counts by identity, verb and resource, with
// watches counted apart from the other requests.
export interface RequestRecord {
  user: string;
  verb: string;
  /** "group/resource[/subresource]" ("/pods", "prepull.dev/prepulls/status"), or the path. */
  resource: string;
  namespace: string;
  code: number;
}

export interface Count {
  user: string;
  verb: string;
  resource: string;
  count: number;
}

export class Accounting {
  readonly #records: RequestRecord[] = [];

  record(r: RequestRecord): void {
    this.#records.push(r);
  }

  /** Every request seen, oldest first. */
  all(): readonly RequestRecord[] {
    return this.#records;
  }

  /** Requests matching the filter (fields left out match anything). */
  count(filter: Partial<Omit<RequestRecord, 'code'>> & { watch?: boolean } = {}): number {
    return this.#records.filter((r) => {
      if (filter.watch !== undefined && (r.verb === 'watch') !== filter.watch) return false;
      if (filter.user !== undefined && r.user !== filter.user) return false;
      if (filter.verb !== undefined && r.verb !== filter.verb) return false;
      if (filter.resource !== undefined && r.resource !== filter.resource) return false;
      return filter.namespace === undefined || r.namespace === filter.namespace;
    }).length;
  }

  /** Counts grouped by identity, verb and resource. */
  summary(): Count[] {
    const counts = new Map<string, Count>();
    for (const r of this.#records) {
      const key = `${r.user}\u0000${r.verb}\u0000${r.resource}`;
      const c = counts.get(key) ?? { user: r.user, verb: r.verb, resource: r.resource, count: 0 };
      c.count++;
      counts.set(key, c);
    }
    return [...counts.values()].sort((a, b) => b.count - a.count);
  }

  /** Non-watch requests (what the agent's steady state must keep at zero). */
  nonWatch(user?: string): number {
    return user === undefined ? this.count({ watch: false }) : this.count({ user, watch: false });
  }

  reset(): void {
    this.#records.length = 0;
  }
}
