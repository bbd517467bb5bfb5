// The fault suite's catalogue and its record. Every fault the suite tries has an id here with
// the sentence docs/reliability.md shows for it; a test that injects the fault calls
// recordFault() once it has converged (or once it has seen the outcome the fault should have),
// with the time from the fault's end — the registry answering again, the runtime back, the
// bad input in place — to convergence. The records go, one JSON line each, to
// `$PREPULL_FAULT_REPORT` (default `.harness/faults.jsonl` in the repository), from which the
// table in docs/reliability.md is written; test/deploy/reliability.test.ts checks that every id
// below has its row there.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FAULTS = {
  // Registry, through the fault proxy (test/harness/fault-proxy.ts).
  'registry-503': 'the registry answers 503 to every request for a while',
  'registry-429-retry-after':
    'the registry answers 429 with Retry-After to every request for a while',
  'registry-hang': 'the registry accepts connections and sends nothing mid-blob',
  'registry-drip': 'the registry sends blobs at a slow drip (bytes keep advancing)',
  'registry-reset-mid-blob': 'the connection is reset in the middle of a blob',
  'registry-truncated-blob': 'a blob ends early: the connection closes before Content-Length bytes',
  'registry-wrong-digest': 'a blob served with content that does not match its digest',
  // The node's runtime and prepull's own process.
  'containerd-restart-mid-pull': 'containerd stopped mid-pull and started again',
  'containerd-restart-idle': 'containerd stopped while idle and started again',
  'containerd-outage-5min': 'containerd down for 5 minutes, no schedule',
  'docker-restart-mid-pull': 'Docker Engine stopped mid-pull and started again',
  'docker-restart-idle': 'Docker Engine stopped while idle and started again',
  'kill9-mid-pull-containerd': 'prepull killed with SIGKILL mid-pull on containerd, then restarted',
  'kill9-mid-pull-docker': 'prepull killed with SIGKILL mid-pull on Docker Engine, then restarted',
  // The Kubernetes API, from the API test server's fault hooks, against a running agent.
  'api-watch-drop': 'every watch connection dropped',
  'api-410-gone': 'watch history compacted: the resume answers 410 Gone',
  'api-5xx': 'the API server answers 500/503 for a while',
  'api-slow': 'every API answer delayed',
  // The node's disk.
  'disk-floor': "the image filesystem's free space at the floor",
  // Input.
  'hostile-inputs': '50 hostile input files beside valid PrePulls',
} as const;

export type FaultId = keyof typeof FAULTS;

export interface FaultRecord {
  id: FaultId;
  /** The runtime the fault ran on, where it matters. */
  runtime?: 'containerd' | 'docker';
  /** From the fault's end to convergence, in ms (undefined where nothing had to converge). */
  convergedMs?: number;
  /** One line: what was seen (state, reason, what stayed on the node). */
  outcome: string;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function faultReportPath(): string {
  return process.env.PREPULL_FAULT_REPORT ?? join(root, '.harness', 'faults.jsonl');
}

/** Appends one record to the fault report. */
export function recordFault(record: FaultRecord): void {
  const path = faultReportPath();
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, `${JSON.stringify({ ...record, at: new Date().toISOString() })}\n`);
}
