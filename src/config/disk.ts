// The disk guard's flags, shared by `prepull agent` and `prepull sync`: the image filesystem's
// free-space floor (`--image-fs-floor`, a percentage of its capacity or a quantity), the byte
// budget for what prepull pins (`--pin-budget`), and the path to measure (`--image-fs-path`).
// ADR 0019 explains the default.
import { PrepullError } from '../errors.ts';

/** Free space the image filesystem keeps: a share of its capacity, or bytes. */
export type DiskFloor = { readonly percent: number } | { readonly bytes: number };

export interface DiskGuardConfig {
  floor: DiskFloor;
  /** Bytes the images prepull pins may add up to on this node; absent: no budget. */
  pinBudgetBytes?: number;
  /** Where to measure free space; absent: the mount point the runtime reports. */
  imageFsPath?: string;
}

/**
 * 20 %: kubelet's image GC starts at 85 % used (15 % free) and its default hard eviction at
 * `imagefs.available<15%`; pinned images are out of GC's reach, so a floor at 15 % would let
 * prepull alone take the node to the eviction line. 20 % is GC's own low mark (80 % used): pulls
 * by prepull never start GC nor eviction, and the 5 points above the line stay for what kubelet
 * and the Pods write.
 */
export const DEFAULT_DISK_FLOOR: DiskFloor = { percent: 20 };

const FLOOR_USAGE = 'a percentage of the capacity such as "20%" or a quantity such as "10Gi"';

const SUFFIXES: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * A byte count in Kubernetes quantity spelling (`10Gi`, `500M`, `1.5Ti`, `1e9`, `123`);
 * undefined when `text` is not one. Fractions of a byte round up, as Kubernetes rounds them.
 */
export function parseByteQuantity(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|)|e(\d+))$/.exec(
    text.trim(),
  );
  if (match === null) return undefined;
  const [, number, suffix, exponent] = match;
  if (number === undefined) return undefined;
  // `Ki` is a suffix; a bare `K` is not Kubernetes spelling (kilo is a lowercase k).
  const scale = exponent !== undefined ? 10 ** Number(exponent) : SUFFIXES[suffix ?? ''];
  if (scale === undefined) return undefined;
  const bytes = Math.ceil(Number(number) * scale);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** `--image-fs-floor`: `N%` (0 to 99) or a quantity; the default when not given. */
export function parseDiskFloor(text: string | undefined): DiskFloor {
  if (text === undefined) return DEFAULT_DISK_FLOOR;
  const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  if (percent?.[1] !== undefined) {
    const value = Number(percent[1]);
    if (value < 100) return { percent: value };
    throw new PrepullError(
      'ERR_USAGE',
      `--image-fs-floor: "${text}" leaves no room at all; give a percentage below 100% or a quantity such as "10Gi"`,
    );
  }
  const bytes = parseByteQuantity(text);
  if (bytes === undefined) {
    throw new PrepullError('ERR_USAGE', `--image-fs-floor must be ${FLOOR_USAGE}, got "${text}"`);
  }
  return { bytes };
}

/** `--pin-budget`: a positive quantity; absent when not given. */
export function parsePinBudget(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const bytes = parseByteQuantity(text);
  if (bytes === undefined || bytes <= 0) {
    throw new PrepullError(
      'ERR_USAGE',
      `--pin-budget must be a positive quantity of bytes such as "50Gi" or "200G", got "${text}"`,
    );
  }
  return bytes;
}

/** The three flags as one object. */
export function parseDiskGuard(
  floor: string | undefined,
  budget: string | undefined,
  path: string | undefined,
): DiskGuardConfig {
  if (path !== undefined && !path.startsWith('/')) {
    throw new PrepullError('ERR_USAGE', `--image-fs-path must be an absolute path, got "${path}"`);
  }
  const pinBudgetBytes = parsePinBudget(budget);
  return {
    floor: parseDiskFloor(floor),
    ...(pinBudgetBytes !== undefined ? { pinBudgetBytes } : {}),
    ...(path !== undefined ? { imageFsPath: path } : {}),
  };
}

/** Flag help, the same in both commands. */
export const DISK_FLAGS_USAGE = `      --image-fs-floor F      free space the image filesystem keeps: no pull starts that
                              would take it below F, a percentage of its capacity ("20%")
                              or a quantity ("10Gi") (default 20%: kubelet's image GC low
                              mark, above its 15% eviction line; ADR 0019)
      --pin-budget Q          the images prepull pins on this node may add up to Q bytes
                              at most, a quantity such as "50Gi" (default: no budget)
      --image-fs-path PATH    measure free space at PATH (default: the image filesystem's
                              mount point as the runtime reports it)
`;
