// The protobuf wire format: tags, varints, fixed-width and length-delimited values, read from
// and written to buffers. What the values mean is values.ts's job; which fields, codec.ts's.

/** As protobufjs: messages nested deeper than this are refused, in both directions. */
export const MAX_DEPTH = 100;

export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
export const FIXED32 = 5;

export const TWO_32 = 4294967296;

/** A message that cannot be decoded: the codec adds which type it was. */
export class WireError extends Error {}

export class Reader {
  readonly buf: Buffer;
  pos = 0;
  /** Where the message (or packed run) being read ends. */
  end: number;
  /** High 32 bits of the last varint or fixed64 read (the low ones are returned). */
  hi = 0;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = this.buf.length;
  }

  #truncated(needs: number): WireError {
    return new WireError(
      `truncated: ${needs} more byte(s) needed at offset ${this.pos}, ${this.end - this.pos} left`,
    );
  }

  #byte(): number {
    if (this.pos >= this.end) throw this.#truncated(1);
    return this.buf[this.pos++] ?? 0;
  }

  /** A varint of up to 64 bits: returns the low 32 (unsigned), leaves the high ones in `hi`. */
  varint(): number {
    let lo = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.#byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.hi = 0;
        return lo >>> 0;
      }
    }
    b = this.#byte();
    lo |= (b & 0x0f) << 28;
    let hi = (b & 0x7f) >>> 4;
    for (let shift = 3; b >= 0x80 && shift < 32; shift += 7) {
      b = this.#byte();
      hi |= (b & 0x7f) << shift;
    }
    if (b >= 0x80) throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
    this.hi = hi >>> 0;
    return lo >>> 0;
  }

  /** A length prefix, checked against what is left. */
  length(): number {
    const at = this.pos;
    const length = this.varint();
    if (this.hi !== 0 || length > this.end - this.pos) {
      const needs = this.hi * TWO_32 + length;
      this.pos = at;
      throw new WireError(
        `truncated: a length of ${needs} at offset ${at} runs past the end (${this.end - at} left)`,
      );
    }
    return length;
  }

  advance(count: number): number {
    if (count > this.end - this.pos) throw this.#truncated(count);
    const at = this.pos;
    this.pos += count;
    return at;
  }

  fixed32(): number {
    return this.buf.readUInt32LE(this.advance(4));
  }

  fixed64(): number {
    const at = this.advance(8);
    this.hi = this.buf.readUInt32LE(at + 4);
    return this.buf.readUInt32LE(at);
  }

  float(): number {
    return this.buf.readFloatLE(this.advance(4));
  }

  double(): number {
    return this.buf.readDoubleLE(this.advance(8));
  }

  string(): string {
    const length = this.length();
    return this.buf.toString('utf8', this.advance(length), this.pos);
  }

  bytes(): Buffer {
    const length = this.length();
    if (length === 0) return Buffer.alloc(0);
    return this.buf.subarray(this.advance(length), this.pos);
  }

  /** Skips an unknown field's value. */
  skip(wire: number, depth: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.advance(8);
    else if (wire === LENGTH_DELIMITED) this.advance(this.length());
    else if (wire === FIXED32) this.advance(4);
    else if (wire === START_GROUP) {
      if (depth > MAX_DEPTH) throw new WireError(`groups nested more than ${MAX_DEPTH} deep`);
      for (let tag = this.tag(); (tag & 7) !== END_GROUP; tag = this.tag()) {
        this.skip(tag & 7, depth + 1);
      }
    } else {
      throw new WireError(`an end-group tag without its start before offset ${this.pos}`);
    }
  }

  tag(): number {
    const at = this.pos;
    const tag = this.varint();
    if (this.hi !== 0 || tag >>> 3 === 0) {
      throw new WireError(
        `invalid field number ${this.hi * 2 ** 29 + (tag >>> 3)} at offset ${at}`,
      );
    }
    if ((tag & 7) > FIXED32) throw new WireError(`invalid wire type ${tag & 7} at offset ${at}`);
    return tag;
  }
}

export class Writer {
  buf = Buffer.allocUnsafe(256);
  pos = 0;

  reserve(count: number): void {
    if (this.pos + count <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + count));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  varint(value: number): void {
    this.reserve(5);
    while (value > 0x7f) {
      this.buf[this.pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.buf[this.pos++] = value;
  }

  varint64(lo: number, hi: number): void {
    if (hi === 0) {
      this.varint(lo);
      return;
    }
    this.reserve(10);
    // The low 28 bits, then bits 28..34 spanning both halves, then the rest of the high ones.
    for (let i = 0; i < 4; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    let rest = hi;
    let b = lo | ((rest & 0x07) << 4);
    rest >>>= 3;
    while (rest > 0) {
      this.buf[this.pos++] = b | 0x80;
      b = rest & 0x7f;
      rest >>>= 7;
    }
    this.buf[this.pos++] = b;
  }

  fixed32(value: number): void {
    this.reserve(4);
    this.pos = this.buf.writeUInt32LE(value, this.pos);
  }

  fixed64(lo: number, hi: number): void {
    this.reserve(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.pos = this.buf.writeUInt32LE(hi, this.pos + 4);
  }

  float(value: number): void {
    this.reserve(4);
    this.pos = this.buf.writeFloatLE(value, this.pos);
  }

  double(value: number): void {
    this.reserve(8);
    this.pos = this.buf.writeDoubleLE(value, this.pos);
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.reserve(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  string(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.reserve(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  /** Starts a length-delimited value whose length is not known yet; returns where it starts. */
  fork(): number {
    this.reserve(1);
    return ++this.pos;
  }

  /** Ends what `fork` started: puts its length in front, moving it if that takes > 1 byte. */
  join(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.reserve(extra);
    this.buf.copyWithin(start + extra, start, this.pos);
    this.pos += extra;
    const end = this.pos;
    this.pos = start - 1;
    this.varint(length);
    this.pos = end;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest > 0; rest >>>= 7) size++;
  return size;
}
