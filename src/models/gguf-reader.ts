/**
 * Reads the metadata of a GGUF file (the key/value section after the header; never the tensors),
 * in plain JavaScript: a server that runs its models in llama-server needs a few facts from the
 * header before it starts one, and loading llama.cpp's bindings for that would cost the server
 * process tens of MiB. The layout is the one gguf-writer.ts writes (versions 2 and 3 share it).
 */
import { type FileHandle, open } from "node:fs/promises";

const GGUF_MAGIC = 0x46554747;
/** Bytes read from the file at a time. */
const CHUNK = 1 << 20;
/** A key, a string value or an array longer than this is not a GGUF header (a corrupt or hostile file). */
const MAX_STRING_BYTES = 64 << 20;
const MAX_ARRAY_ITEMS = 1 << 26;
const MAX_KEYS = 1 << 16;

/** The value types of the spec, by id. */
enum ValueType {
  Uint8 = 0,
  Int8 = 1,
  Uint16 = 2,
  Int16 = 3,
  Uint32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  Uint64 = 10,
  Int64 = 11,
  Float64 = 12,
}

const FIXED_SIZE: Partial<Record<ValueType, number>> = {
  [ValueType.Uint8]: 1,
  [ValueType.Int8]: 1,
  [ValueType.Uint16]: 2,
  [ValueType.Int16]: 2,
  [ValueType.Uint32]: 4,
  [ValueType.Int32]: 4,
  [ValueType.Float32]: 4,
  [ValueType.Bool]: 1,
  [ValueType.Uint64]: 8,
  [ValueType.Int64]: 8,
  [ValueType.Float64]: 8,
};

export type GgufMetadataValue = number | boolean | string | readonly GgufMetadataValue[];

export interface GgufMetadataOptions {
  /**
   * Whether an array's items are wanted (a vocabulary's 150,000 merges are not): arrays this
   * answers false for are skipped over and come back as empty arrays.
   */
  keepArray?: (key: string) => boolean;
}

/** The metadata keys of a GGUF file and their values (64-bit integers as numbers). */
export async function readGgufMetadata(
  path: string,
  options: GgufMetadataOptions = {},
): Promise<Map<string, GgufMetadataValue>> {
  const file = await open(path, "r");
  try {
    const reader = new ChunkedReader(file);
    if ((await reader.u32()) !== GGUF_MAGIC) throw new Error(`${path} is not a GGUF file`);
    const version = await reader.u32();
    if (version < 2 || version > 3) throw new Error(`${path}: GGUF version ${version} is not supported`);
    await reader.u64(); // tensor count
    const keys = await reader.u64();
    if (keys > MAX_KEYS) throw new Error(`${path}: the GGUF header claims ${keys} metadata keys`);
    const metadata = new Map<string, GgufMetadataValue>();
    for (let i = 0; i < keys; i++) {
      const key = await reader.string();
      const type = (await reader.u32()) as ValueType;
      if (type === ValueType.Array) {
        const itemType = (await reader.u32()) as ValueType;
        const count = await reader.u64();
        if (count > MAX_ARRAY_ITEMS) throw new Error(`${path}: array ${key} has ${count} items`);
        const keep = options.keepArray?.(key) ?? true;
        metadata.set(
          key,
          keep ? await reader.array(itemType, count) : (await reader.skipArray(itemType, count), []),
        );
      } else {
        metadata.set(key, await reader.scalar(type));
      }
    }
    return metadata;
  } finally {
    await file.close();
  }
}

/** Sequential reads over a file handle through a buffer refilled a chunk at a time. */
class ChunkedReader {
  private buffer = Buffer.alloc(0);
  private offset = 0;
  private filePosition = 0;

  constructor(private readonly file: FileHandle) {}

  async u32(): Promise<number> {
    await this.ensure(4);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  async u64(): Promise<number> {
    await this.ensure(8);
    const value = this.buffer.readBigUInt64LE(this.offset);
    this.offset += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("a GGUF length is out of range");
    return Number(value);
  }

  async string(): Promise<string> {
    const length = await this.u64();
    if (length > MAX_STRING_BYTES) throw new Error(`a GGUF string claims ${length} bytes`);
    await this.ensure(length);
    const value = this.buffer.toString("utf8", this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  async scalar(type: ValueType): Promise<number | boolean | string> {
    if (type === ValueType.String) return this.string();
    const size = FIXED_SIZE[type];
    if (size === undefined) throw new Error(`unknown GGUF value type ${type}`);
    await this.ensure(size);
    const at = this.offset;
    this.offset += size;
    const b = this.buffer;
    switch (type) {
      case ValueType.Uint8:
        return b.readUInt8(at);
      case ValueType.Int8:
        return b.readInt8(at);
      case ValueType.Uint16:
        return b.readUInt16LE(at);
      case ValueType.Int16:
        return b.readInt16LE(at);
      case ValueType.Uint32:
        return b.readUInt32LE(at);
      case ValueType.Int32:
        return b.readInt32LE(at);
      case ValueType.Float32:
        return b.readFloatLE(at);
      case ValueType.Bool:
        return b.readUInt8(at) !== 0;
      case ValueType.Uint64:
        return Number(b.readBigUInt64LE(at));
      case ValueType.Int64:
        return Number(b.readBigInt64LE(at));
      default:
        return b.readDoubleLE(at);
    }
  }

  async array(itemType: ValueType, count: number): Promise<GgufMetadataValue[]> {
    if (itemType === ValueType.Array) throw new Error("nested GGUF arrays are not supported");
    const items: GgufMetadataValue[] = new Array(count);
    for (let i = 0; i < count; i++) items[i] = await this.scalar(itemType);
    return items;
  }

  async skipArray(itemType: ValueType, count: number): Promise<void> {
    if (itemType === ValueType.String) {
      for (let i = 0; i < count; i++) {
        const length = await this.u64();
        await this.skip(length);
      }
      return;
    }
    const size = FIXED_SIZE[itemType];
    if (size === undefined) throw new Error(`unknown GGUF array item type ${itemType}`);
    await this.skip(size * count);
  }

  private async skip(bytes: number): Promise<void> {
    const buffered = this.buffer.length - this.offset;
    if (bytes <= buffered) {
      this.offset += bytes;
      return;
    }
    this.filePosition += bytes - buffered;
    this.buffer = Buffer.alloc(0);
    this.offset = 0;
  }

  /** Makes `bytes` bytes available at `offset`; a file that ends first is truncated. */
  private async ensure(bytes: number): Promise<void> {
    if (this.buffer.length - this.offset >= bytes) return;
    const rest = this.buffer.subarray(this.offset);
    const next = Buffer.allocUnsafe(Math.max(bytes, CHUNK));
    rest.copy(next);
    let filled = rest.length;
    while (filled < bytes) {
      const { bytesRead } = await this.file.read(next, filled, next.length - filled, this.filePosition);
      if (bytesRead === 0) throw new Error("the GGUF file ends inside its metadata");
      filled += bytesRead;
      this.filePosition += bytesRead;
    }
    this.buffer = next.subarray(0, filled);
    this.offset = 0;
  }
}
