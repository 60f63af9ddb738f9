/**
 * Dot products of one query with many stored rows, in WebAssembly SIMD: four f32x4 running sums
 * (16 floats a step), about five times as fast as the best plain-JavaScript loop on the same core
 * (bench/RESULTS.md, 2026-12-06). The module is 330 bytes, written out below instruction by
 * instruction (no toolchain, nothing to build); the rows live in its memory, one memory per store.
 *
 *   dots(query, rows, count, stride, out): for r in [0, count):
 *     out[r] = Σ_i rows[r·stride + i] · query[i]    (f32; i < stride, stride a multiple of 16)
 */

// The WebAssembly API as this file uses it (the project compiles against ES2023 and Node's types,
// which do not declare it).
declare global {
  namespace WebAssembly {
    class Module {
      constructor(bytes: Uint8Array);
    }
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number });
      readonly buffer: ArrayBuffer;
    }
    class Instance {
      constructor(module: Module, imports: Record<string, Record<string, unknown>>);
      readonly exports: Record<string, unknown>;
    }
  }
}

/** Floats a row takes in the kernel's memory: its size rounded up to the kernel's step of 16 (zeros after). */
export function strideOf(dims: number): number {
  return Math.ceil(dims / 16) * 16;
}

/** Rows one dots() call handles at most (the results buffer's size). */
export const KERNEL_ROWS = 16_384;

const PAGE = 65_536;
/** A wasm32 memory holds at most 4 GiB (65,536 pages). */
const MAX_PAGES = 65_536;

/**
 * A store's rows in kernel memory: `rows` (capacity × stride floats) is written by the loader;
 * compute() gives the dot products of a query with a run of rows.
 */
export class DotKernel {
  readonly stride: number;
  readonly rows: Float32Array;
  private readonly query: Float32Array;
  private readonly out: Float32Array;
  private readonly dots: (query: number, rows: number, count: number, stride: number, out: number) => void;
  private readonly rowsAt: number;

  constructor(dims: number, capacity: number) {
    const stride = strideOf(dims);
    const queryBytes = stride * 4;
    const outBytes = KERNEL_ROWS * 4;
    const rowsAt = queryBytes + outBytes;
    const pages = Math.ceil((rowsAt + capacity * stride * 4) / PAGE) || 1;
    if (pages > MAX_PAGES) throw new RangeError("too many rows for one kernel memory (4 GiB)");
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(dotsModule(), { e: { m: memory } });
    this.dots = instance.exports.dots as DotKernel["dots"];
    this.stride = stride;
    this.rowsAt = rowsAt;
    this.query = new Float32Array(memory.buffer, 0, stride);
    this.out = new Float32Array(memory.buffer, queryBytes, KERNEL_ROWS);
    this.rows = new Float32Array(memory.buffer, rowsAt, capacity * stride);
  }

  /** Whether `capacity` rows of `dims` floats fit in one kernel memory. */
  static fits(dims: number, capacity: number): boolean {
    const stride = strideOf(dims);
    return stride * 4 + KERNEL_ROWS * 4 + capacity * stride * 4 <= MAX_PAGES * PAGE;
  }

  /**
   * The dot products of `query` (stride floats, zeros past its size) with rows [from, from +
   * count), count ≤ KERNEL_ROWS. The result is a view the next call overwrites: read it first.
   */
  compute(query: Float32Array, from: number, count: number): Float32Array {
    this.query.set(query);
    this.dots(0, this.rowsAt + from * this.stride * 4, count, this.stride, this.query.byteLength);
    return this.out.subarray(0, count);
  }
}

let compiled: WebAssembly.Module | undefined;

function dotsModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(dotsModuleBytes());
  return compiled;
}

// Instructions (WebAssembly core and SIMD opcodes).
const I32 = 0x7f;
const V128 = 0x7b;
const BLOCK = 0x02;
const LOOP = 0x03;
const VOID = 0x40;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const I32_GE_U = 0x4f;
const I32_ADD = 0x6a;
const I32_SHL = 0x74;
const F32_ADD = 0x92;
const F32_STORE = 0x38;
const SIMD = 0xfd;
const V128_LOAD = [SIMD, 0x00];
const V128_CONST = [SIMD, 0x0c];
const F32X4_EXTRACT_LANE = [SIMD, 0x1f];
const F32X4_ADD = [SIMD, 0xe4, 0x01];
const F32X4_MUL = [SIMD, 0xe6, 0x01];

const get = (local: number) => [0x20, local];
const set = (local: number) => [0x21, local];
const tee = (local: number) => [0x22, local];
const i32 = (value: number) => [0x41, ...sleb(value)];

// Locals: the five parameters, then r, i, p (i32) and four v128 sums.
const [QUERY, ROWS, COUNT, STRIDE, OUT] = [0, 1, 2, 3, 4];
const [R, I, P] = [5, 6, 7];
const SUMS = [8, 9, 10, 11];

/** `base + index·4` on the stack. */
const address = (base: number, index: number) => [...get(base), ...get(index), ...i32(2), I32_SHL, I32_ADD];

function dotsBody(): number[] {
  const accumulate = SUMS.flatMap((sum, k) => [
    // sum += v128.load(p + i·4 + 16k) · v128.load(query + i·4 + 16k)
    ...get(sum),
    ...address(P, I),
    ...V128_LOAD,
    4,
    ...uleb(16 * k),
    ...address(QUERY, I),
    ...V128_LOAD,
    4,
    ...uleb(16 * k),
    ...F32X4_MUL,
    ...F32X4_ADD,
    ...set(sum),
  ]);
  const [s0, s1, s2, s3] = SUMS as [number, number, number, number];
  const code = [
    ...get(ROWS),
    ...set(P),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    // while r < count
    ...get(R),
    ...get(COUNT),
    I32_GE_U,
    BR_IF,
    1,
    ...V128_CONST,
    ...new Array(16).fill(0),
    ...tee(s0),
    ...tee(s1),
    ...tee(s2),
    ...set(s3),
    ...i32(0),
    ...set(I),
    BLOCK,
    VOID,
    LOOP,
    VOID,
    // while i < stride, 16 floats a step
    ...get(I),
    ...get(STRIDE),
    I32_GE_U,
    BR_IF,
    1,
    ...accumulate,
    ...get(I),
    ...i32(16),
    I32_ADD,
    ...set(I),
    BR,
    0,
    END,
    END,
    // out[r] = the sum of the four sums' lanes
    ...address(OUT, R),
    ...get(s0),
    ...get(s1),
    ...F32X4_ADD,
    ...get(s2),
    ...get(s3),
    ...F32X4_ADD,
    ...F32X4_ADD,
    ...tee(s0),
    ...F32X4_EXTRACT_LANE,
    0,
    ...[1, 2, 3].flatMap((lane) => [...get(s0), ...F32X4_EXTRACT_LANE, lane, F32_ADD]),
    F32_STORE,
    2,
    0,
    // p += stride·4; r += 1
    ...address(P, STRIDE),
    ...set(P),
    ...get(R),
    ...i32(1),
    I32_ADD,
    ...set(R),
    BR,
    0,
    END,
    END,
    END,
  ];
  const locals = [2, 3, I32, 4, V128];
  return [...locals, ...code];
}

function dotsModuleBytes(): Uint8Array {
  const name = (text: string) => [text.length, ...Buffer.from(text, "latin1")];
  const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
  const body = dotsBody();
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    // type 0: (i32 i32 i32 i32 i32) -> ()
    ...section(1, [1, 0x60, 5, I32, I32, I32, I32, I32, 0]),
    // import memory e.m (at least one page)
    ...section(2, [1, ...name("e"), ...name("m"), 0x02, 0x00, 1]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name("dots"), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}
