// The per-image result `prepull sync` prints: a table for people, or one JSON document for
// scripts (logs go to stderr, so stdout stays parseable).
import type { DiskStatus } from '../api/nodeimagecache.ts';
import { formatBytes } from '../bytes.ts';
import type { ImageReport, ReleasedImage } from '../image/report.ts';

export interface SyncResult {
  node: string;
  runtime: { name: string; version: string; endpoint: string };
  images: ImageReport[];
  /** Problems with the PrePull files themselves (a bad object fails alone). */
  fileErrors: { code: string; message: string }[];
  /** Images no PrePull file wants any more, released since the last result printed, oldest first. */
  released?: ReleasedImage[];
  /** The disk guard's picture: the floor, free space, the pin budget and what is pinned. */
  disk?: DiskStatus;
  ok: boolean;
}

/** A size for the table and the live view, one decimal; "-" when unknown. */
export function humanBytes(bytes: number | undefined): string {
  return bytes === undefined ? '-' : formatBytes(bytes, 1);
}

function shortDigest(digest: string | undefined): string {
  if (digest === undefined) return '-';
  const [algorithm, hex = ''] = digest.split(':');
  return `${algorithm}:${hex.slice(0, 12)}`;
}

function duration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** A digest reference, shortened for the table (the JSON output keeps it whole). */
export function shortRef(ref: string): string {
  return ref.replace(/@(sha256:[0-9a-f]{12})[0-9a-f]{52}$/, '@$1…');
}

/** `Reason: message (CODE)`: the code is what docs/errors.md explains and scripts match on. */
function reasonCell(r: ImageReport): string {
  const text = r.message !== undefined ? `${r.reason}: ${r.message}` : r.reason;
  return r.code !== undefined ? `${text} (${r.code})` : text;
}

/**
 * `error: MESSAGE (CODE)`. A message of several lines — a YAML error with the parser's excerpt
 * and its caret — is shown whole: its first line carries the code, the others follow indented
 * alike, so the caret stays under the spot it points at.
 */
function errorLines(error: { code: string; message: string }): string[] {
  const [first = '', ...rest] = error.message.trimEnd().split('\n');
  return [
    `error: ${first} (${error.code})`,
    ...rest.map((line) => (line === '' ? '' : `  ${line}`)),
  ];
}

export function renderTable(result: SyncResult): string {
  const header = ['IMAGE', 'STATE', 'DIGEST', 'SIZE', 'PINNED', 'TIME', 'REASON'];
  const rows = result.images.map((r) => [
    shortRef(r.written),
    r.state,
    shortDigest(r.digest ?? (r.state === 'Present' ? r.registryDigest : undefined)),
    humanBytes(r.size),
    pinnedCell(r),
    duration(r.pullDurationMs),
    reasonCell(r),
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (i === 6 ? 0 : (row[i] ?? '').length))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  for (const error of result.fileErrors) out.push(...errorLines(error));
  for (const r of result.released ?? []) {
    out.push(`released: ${r.image} ${r.action}${r.reason !== undefined ? ` (${r.reason})` : ''}`);
  }
  const disk = diskLine(result.disk);
  if (disk !== undefined) out.push(disk);
  const present = result.images.filter((r) => r.state === 'Present').length;
  out.push(
    `${present}/${result.images.length} images present on ${result.node} (${result.runtime.name} ${result.runtime.version})` +
      (result.fileErrors.length > 0
        ? `; ${result.fileErrors.length} error(s) in the PrePull files`
        : ''),
  );
  return `${out.join('\n')}\n`;
}

export function renderJson(result: SyncResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}

/** "yes (label)" where only containerd's label carries the pin and CRI reports it false. */
function pinnedCell(r: ImageReport): string {
  if (r.pinned === undefined) return '-';
  if (!r.pinned) return 'no';
  return r.pinSource === 'label' ? 'yes (label)' : 'yes';
}

/**
 * The disk guard's line, shown when it matters: images are held for room, or free space cannot
 * be measured (the floor is then not applied).
 */
function diskLine(disk: DiskStatus | undefined): string | undefined {
  if (disk === undefined || (disk.heldImages === 0 && disk.message === undefined)) return undefined;
  const free =
    disk.availableBytes !== undefined
      ? `${humanBytes(disk.availableBytes)} free, floor ${disk.floor}${disk.floorBytes !== undefined && disk.floor.endsWith('%') ? ` (${humanBytes(disk.floorBytes)})` : ''}`
      : `free space not measured (${disk.message ?? 'unknown'})`;
  const budget =
    disk.pinBudgetBytes !== undefined
      ? `${humanBytes(disk.pinnedBytes)} pinned of a ${humanBytes(disk.pinBudgetBytes)} budget`
      : `${humanBytes(disk.pinnedBytes)} pinned`;
  const held =
    disk.heldImages > 0
      ? `; ${disk.heldImages} image(s) held for room (ERR_DISK_BUDGET), pulled once there is room`
      : '';
  return `disk: ${free}; ${budget}${held}`;
}
