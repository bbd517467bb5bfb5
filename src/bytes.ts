// Byte counts for people, in binary units: the sync table and progress, and the disk guard's
// messages, spell sizes the same way.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** `bytes` in the largest binary unit below it, with `digits` decimals: 1536 → "1.50 KiB". */
export function formatBytes(bytes: number, digits = 2): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(digits)} ${UNITS[unit] ?? ''}`;
}
