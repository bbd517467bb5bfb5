// Minimal POSIX ustar writer for building test image layers in memory.
// Output is deterministic (mtime 0, uid/gid 0, no user names) so equal inputs give equal digests.

export type TarEntry =
  | { readonly type: 'file'; readonly path: string; readonly data: Buffer; readonly mode?: number }
  | { readonly type: 'dir'; readonly path: string; readonly mode?: number }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string };

export const BLOCK_SIZE = 512;

const NAME_MAX = 100;
const PREFIX_MAX = 155;
const LINKNAME_MAX = 100;
// Eleven octal digits in the size field: the ustar limit without GNU/PAX extensions.
const SIZE_MAX = 0o77777777777;

const TYPEFLAG = { file: '0', symlink: '2', dir: '5' } as const;
const DEFAULT_MODE = { file: 0o644, symlink: 0o777, dir: 0o755 } as const;

/** The ustar checksum: the byte sum of the header with the checksum field read as spaces. */
export function ustarChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  }
  return sum;
}

/** One 512-byte ustar header for an entry (its data, if any, follows separately). */
export function tarHeader(entry: TarEntry): Buffer {
  const header = Buffer.alloc(BLOCK_SIZE);
  const path = normalisePath(entry.path) + (entry.type === 'dir' ? '/' : '');
  const { name, prefix } = splitName(path);
  const size = entry.type === 'file' ? entry.data.length : 0;
  if (size > SIZE_MAX) {
    throw new Error(`tar: ${path} is ${size} bytes; ustar allows at most ${SIZE_MAX}`);
  }
  const mode = (entry.type === 'symlink' ? undefined : entry.mode) ?? DEFAULT_MODE[entry.type];

  writeString(header, name, 0, NAME_MAX);
  writeOctal(header, mode & 0o7777, 100, 8);
  writeOctal(header, 0, 108, 8); // uid
  writeOctal(header, 0, 116, 8); // gid
  writeOctal(header, size, 124, 12);
  writeOctal(header, 0, 136, 12); // mtime
  header.write(TYPEFLAG[entry.type], 156, 'ascii');
  if (entry.type === 'symlink') {
    if (Buffer.byteLength(entry.target) > LINKNAME_MAX) {
      throw new Error(`tar: symlink target of ${path} is longer than ${LINKNAME_MAX} bytes`);
    }
    writeString(header, entry.target, 157, LINKNAME_MAX);
  }
  header.write('ustar\u000000', 257, 'ascii'); // magic "ustar\0" then version "00"
  writeOctal(header, 0, 329, 8); // devmajor
  writeOctal(header, 0, 337, 8); // devminor
  writeString(header, prefix, 345, PREFIX_MAX);

  // Six octal digits, NUL, space: the layout GNU tar and Go's archive/tar write.
  header.write(ustarChecksum(header).toString(8).padStart(6, '0') + '\u0000 ', 148, 'ascii');
  return header;
}

/** A whole archive: headers, data padded to 512 bytes, and the two zero blocks that end it. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.type === 'file' && entry.data.length > 0) {
      parts.push(entry.data);
      const pad = padding(entry.data.length);
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(2 * BLOCK_SIZE));
  return Buffer.concat(parts);
}

function padding(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

// Layer tars hold relative names ("bin/sh"), whatever the caller wrote.
function normalisePath(path: string): string {
  const trimmed = path.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed.split('/').some((part) => part === '' || part === '..')) {
    throw new Error(`tar: invalid entry path ${JSON.stringify(path)}`);
  }
  return trimmed;
}

// A name over 100 bytes goes in prefix + "/" + name, split at a slash so both parts fit.
function splitName(path: string): { name: string; prefix: string } {
  const bytes = Buffer.from(path);
  if (bytes.length <= NAME_MAX) return { name: path, prefix: '' };
  // A trailing slash (directories) stays with the name part, so never split there.
  for (
    let i = bytes.indexOf(0x2f);
    i >= 0 && i < bytes.length - 1;
    i = bytes.indexOf(0x2f, i + 1)
  ) {
    if (i > PREFIX_MAX) break;
    if (bytes.length - i - 1 <= NAME_MAX) {
      return { prefix: bytes.subarray(0, i).toString(), name: bytes.subarray(i + 1).toString() };
    }
  }
  throw new Error(
    `tar: path ${JSON.stringify(path)} does not fit ustar (name ≤ ${NAME_MAX} bytes after a prefix ≤ ${PREFIX_MAX} bytes split at a "/")`,
  );
}

function writeString(header: Buffer, value: string, offset: number, length: number): void {
  if (Buffer.byteLength(value) > length) throw new Error(`tar: ${value} exceeds ${length} bytes`);
  header.write(value, offset, length, 'utf8');
}

// Octal digits padded with zeros, then a NUL terminator filling the field.
function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  header.write(value.toString(8).padStart(length - 1, '0') + '\u0000', offset, length, 'ascii');
}
