/**
 * Minimal GGUF v3 writer.
 *
 * Layout (all little-endian):
 *   magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
 *   kv*      : key string | value_type u32 | value
 *   tensor*  : name string | n_dims u32 | ne[n_dims] u64 | ggml_type u32 | data_offset u64
 *   padding to `alignment`, then each tensor's data, each padded to `alignment`.
 * Strings are a u64 byte length followed by UTF-8 bytes (no terminator).
 *
 * Tensor data is produced lazily through iterables and written chunk by chunk, so a multi-hundred-MB
 * model never has to exist in memory as a single buffer.
 */
import { type FileHandle, open } from "node:fs/promises";

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** ggml tensor element types supported by this writer (values are ggml's enum ids). */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/** Q8_0 block: one f16 scale followed by 32 signed 8-bit quants. */
const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

const VALUE_TYPE_ID = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufNumberType =
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "uint32"
  | "int32"
  | "float32"
  | "float64";
export type GgufBigIntType = "uint64" | "int64";

export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint | number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: GgufNumberType; values: ArrayLike<number> }
  | { type: "array"; itemType: "string"; values: readonly string[] }
  | { type: "array"; itemType: "bool"; values: readonly boolean[] };

/** Shorthand constructors so metadata tables read naturally. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: "uint32", value }),
  i32: (value: number): GgufValue => ({ type: "int32", value }),
  u64: (value: bigint | number): GgufValue => ({ type: "uint64", value }),
  f32: (value: number): GgufValue => ({ type: "float32", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  strArray: (values: readonly string[]): GgufValue => ({ type: "array", itemType: "string", values }),
  f32Array: (values: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "float32", values }),
  i32Array: (values: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "int32", values }),
};

export interface GgufTensorSpec {
  name: string;
  /** ggml dimension order: shape[0] (ne[0]) is the innermost, contiguous dimension. */
  shape: readonly number[];
  type: GgmlType;
  /**
   * Yields the tensor's values in storage order (ne[0] fastest). Chunks may have any length that is a
   * multiple of the type's block size (32 for Q8_0); whole rows always satisfy that when ne[0] does.
   */
  values: () => Iterable<Float32Array>;
}

export interface GgufFile {
  /** Written in insertion order. */
  metadata: Record<string, GgufValue>;
  tensors: readonly GgufTensorSpec[];
  /** Data alignment; anything but the default is recorded as general.alignment. */
  alignment?: number;
}

/** Writes `file` to `path` (truncating it) and returns the number of bytes written. */
export async function writeGguf(path: string, file: GgufFile): Promise<number> {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  for (const t of file.tensors) validateTensor(t);
  const header = encodeHeader(file, alignment);

  const fh = await open(path, "w");
  try {
    let written = await writeAll(fh, header);
    for (const tensor of file.tensors) {
      written += await writeTensorData(fh, tensor);
      written += await writeAll(fh, new Uint8Array(padding(written, alignment)));
    }
    return written;
  } finally {
    await fh.close();
  }
}

/** Number of bytes a tensor's data occupies, before alignment padding. */
export function tensorByteSize(shape: readonly number[], type: GgmlType): number {
  const n = elementCount(shape);
  switch (type) {
    case GgmlType.F32:
      return n * 4;
    case GgmlType.F16:
      return n * 2;
    case GgmlType.Q8_0:
      return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function blockSize(type: GgmlType): number {
  return type === GgmlType.Q8_0 ? Q8_0_BLOCK : 1;
}

function validateTensor(t: GgufTensorSpec): void {
  if (t.shape.length < 1 || t.shape.length > 4) throw new Error(`${t.name}: GGUF tensors have 1..4 dims`);
  if (!t.shape.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`${t.name}: bad shape ${t.shape}`);
  // ggml quantizes along rows, so each row must hold whole blocks.
  const first = t.shape[0] ?? 0;
  if (first % blockSize(t.type) !== 0) {
    throw new Error(`${t.name}: ne[0]=${first} is not a multiple of the block size ${blockSize(t.type)}`);
  }
}

function padding(offset: number, alignment: number): number {
  return (alignment - (offset % alignment)) % alignment;
}

function encodeHeader(file: GgufFile, alignment: number): Uint8Array {
  const metadata: Record<string, GgufValue> = { ...file.metadata };
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) metadata["general.alignment"] = gguf.u32(alignment);
  const entries = Object.entries(metadata);

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(file.tensors.length);
  w.u64(entries.length);
  for (const [key, value] of entries) {
    w.string(key);
    writeValue(w, value);
  }

  let offset = 0;
  for (const t of file.tensors) {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of t.shape) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    const size = tensorByteSize(t.shape, t.type);
    offset += size + padding(size, alignment);
  }
  w.zeros(padding(w.length, alignment));
  return w.finish();
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  w.u32(VALUE_TYPE_ID[v.type]);
  switch (v.type) {
    case "string":
      w.string(v.value);
      return;
    case "bool":
      w.u8(v.value ? 1 : 0);
      return;
    case "uint64":
    case "int64":
      writeBigScalar(w, v.type, v.value);
      return;
    case "array":
      writeArray(w, v);
      return;
    default:
      writeNumber(w, v.type, v.value);
  }
}

function writeArray(w: ByteWriter, v: Extract<GgufValue, { type: "array" }>): void {
  w.u32(VALUE_TYPE_ID[v.itemType]);
  w.u64(v.values.length);
  if (v.itemType === "string") {
    for (const s of v.values) w.string(s);
  } else if (v.itemType === "bool") {
    for (const b of v.values) w.u8(b ? 1 : 0);
  } else {
    for (let i = 0; i < v.values.length; i++) writeNumber(w, v.itemType, v.values[i] ?? 0);
  }
}

function writeNumber(w: ByteWriter, type: GgufNumberType, value: number): void {
  const view = w.reserve(numberSize(type));
  NUMBER_SETTERS[type](view, value);
}

const NUMBER_SETTERS: Record<GgufNumberType, (view: DataView, value: number) => void> = {
  uint8: (v, x) => v.setUint8(0, x),
  int8: (v, x) => v.setInt8(0, x),
  uint16: (v, x) => v.setUint16(0, x, true),
  int16: (v, x) => v.setInt16(0, x, true),
  uint32: (v, x) => v.setUint32(0, x, true),
  int32: (v, x) => v.setInt32(0, x, true),
  float32: (v, x) => v.setFloat32(0, x, true),
  float64: (v, x) => v.setFloat64(0, x, true),
};

function writeBigScalar(w: ByteWriter, type: GgufBigIntType, value: bigint | number): void {
  const view = w.reserve(8);
  if (type === "uint64") view.setBigUint64(0, BigInt(value), true);
  else view.setBigInt64(0, BigInt(value), true);
}

function numberSize(type: GgufNumberType): number {
  switch (type) {
    case "uint8":
    case "int8":
      return 1;
    case "uint16":
    case "int16":
      return 2;
    case "uint32":
    case "int32":
    case "float32":
      return 4;
    case "float64":
      return 8;
  }
}

async function writeTensorData(fh: FileHandle, t: GgufTensorSpec): Promise<number> {
  const expected = elementCount(t.shape);
  let seen = 0;
  let written = 0;
  for (const chunk of t.values()) {
    if (chunk.length % blockSize(t.type) !== 0) {
      throw new Error(`${t.name}: chunk of ${chunk.length} values splits a quantization block`);
    }
    seen += chunk.length;
    if (seen > expected) break;
    written += await writeAll(fh, encodeValues(chunk, t.type));
  }
  if (seen !== expected) throw new Error(`${t.name}: produced ${seen} values, shape needs ${expected}`);
  return written;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<number> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
    off += bytesWritten;
  }
  return bytes.length;
}

/** Converts float values to the on-disk representation of `type`. */
export function encodeValues(values: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      // Typed arrays use host byte order; every platform node-llama-cpp ships for is little-endian.
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case GgmlType.F16:
      return encodeF16(values);
    case GgmlType.Q8_0:
      return encodeQ8_0(values);
  }
}

function encodeF16(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i] ?? 0);
  return new Uint8Array(out.buffer);
}

/** Mirrors ggml's quantize_row_q8_0_ref: scale = amax/127, quants = round(x/scale). */
function encodeQ8_0(values: Float32Array): Uint8Array {
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const quants = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(values[base + j] ?? 0));
    const d = amax / 127;
    const id = d === 0 ? 0 : 1 / d;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) quants[at + 2 + j] = roundHalfAway((values[base + j] ?? 0) * id);
  }
  return out;
}

// C's roundf rounds halves away from zero; Math.round would round -0.5 toward +inf.
function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE-754 binary32 -> binary16 bits, round-to-nearest-even (Node 20 has no Math.f16round). */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf
  if (e <= 0) return sign | f16Subnormal(mant | 0x800000, 14 - e);
  // Normal: keep the top 10 mantissa bits; a rounding carry correctly bumps the exponent (up to Inf).
  return sign | roundShift((e << 23) | mant, 13);
}

function f16Subnormal(mantissaWithHidden: number, shift: number): number {
  if (shift > 24) return 0;
  return roundShift(mantissaWithHidden, shift);
}

/** value >> shift, rounded to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const rem = value - kept * 2 ** shift;
  const half = 2 ** (shift - 1);
  return rem > half || (rem === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** binary16 bits -> number; used by tests and for sanity checks. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Growable little-endian byte buffer for the (comparatively small) header. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  private static readonly encoder = new TextEncoder();

  get length(): number {
    return this.pos;
  }

  /** Returns a DataView over the next `n` bytes and advances past them. */
  reserve(n: number): DataView {
    this.ensure(n);
    const v = new DataView(this.buf.buffer, this.pos, n);
    this.pos += n;
    return v;
  }

  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  u64(v: number | bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
  }

  string(s: string): void {
    const bytes = ByteWriter.encoder.encode(s);
    this.u64(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}
