import { PassThrough, type Readable } from "node:stream";
import { Busboy } from "@fastify/busboy";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { invalidRequest, ServiceError } from "../core/errors.js";

/** The one file part of a multipart body, as a stream its consumer reads once. */
export interface MultipartFile {
  field: string;
  filename: string;
  mimeType: string;
  stream: Readable;
}

export interface MultipartOptions<T> {
  /** The file part's size limit, for the early refusal of a Content-Length that cannot fit. */
  maxFileBytes: number;
  /** Consumes the file part (streams it to a store). Called at most once. */
  onFile(file: MultipartFile): Promise<T>;
}

/** Room for the form's boundaries, headers and small fields around the file itself. */
const FORM_OVERHEAD_BYTES = 64 * 1024;
/** After a refusal, this much of the rest of a body is read and dropped so the client sees the answer. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Lets a plugin's routes take multipart/form-data: the body is left unread for `readMultipart`,
 * which streams it (Fastify's JSON body limit does not apply to it).
 */
export function acceptMultipart(app: FastifyInstance): void {
  app.addContentTypeParser("multipart/form-data", (_request, _payload, done) => done(null, undefined));
}

/**
 * Reads a multipart/form-data body as it arrives: small text fields are collected, the file part
 * is handed to `onFile` as a stream (never buffered whole). When the consumer fails — the file
 * passed its limit — the rest of the body is read and dropped, so the client gets the error.
 */
export async function readMultipart<T>(
  request: FastifyRequest,
  options: MultipartOptions<T>,
): Promise<{ fields: Record<string, string>; file?: { field: string; filename: string; result: T } }> {
  const contentType = request.headers["content-type"] ?? "";
  if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
    throw invalidRequest("Send the body as multipart/form-data.", null, "invalid_content_type");
  }
  const raw = request.raw;
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > options.maxFileBytes + FORM_OVERHEAD_BYTES) {
    await drain(raw);
    throw new ServiceError(
      "too_large",
      `The file is larger than the limit of ${options.maxFileBytes} bytes.`,
      {
        code: "file_too_large",
      },
    );
  }
  let busboy: InstanceType<typeof Busboy>;
  try {
    busboy = new Busboy({
      headers: request.headers as { "content-type": string },
      limits: { files: 1, fields: 32, parts: 34, fieldSize: 64 * 1024, fieldNameSize: 128 },
    });
  } catch {
    throw invalidRequest("The multipart body has no valid boundary.", null, "invalid_body");
  }
  const fields: Record<string, string> = {};
  let file: { field: string; filename: string; result: Promise<T> } | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    busboy.on("field", (name, value) => {
      fields[name] = value;
    });
    busboy.on("file", (field, stream, filename, _encoding, mimeType) => {
      // The consumer reads a pass-through: if it stops early, the part is still read to its end,
      // which is what lets the parser reach the end of the body.
      const pass = new PassThrough({ highWaterMark: 256 * 1024 });
      stream.pipe(pass);
      const release = () => {
        stream.unpipe(pass);
        stream.resume();
      };
      pass.once("close", () => {
        if (!pass.readableEnded) release();
      });
      const result = options.onFile({ field, filename: filename ?? "", mimeType, stream: pass });
      result.catch(() => {
        release();
        pass.destroy();
      });
      file = { field, filename: filename ?? "", result };
    });
    busboy.once("finish", resolve);
    busboy.once("error", (err: unknown) =>
      reject(
        invalidRequest(
          `The multipart body could not be read: ${(err as Error).message}`,
          null,
          "invalid_body",
        ),
      ),
    );
    raw.once("error", reject);
    raw.once("aborted", () => reject(invalidRequest("The upload was interrupted.", null, "invalid_body")));
  });
  raw.pipe(busboy);
  try {
    await finished;
  } catch (err) {
    raw.unpipe(busboy);
    // A file write still going would never end: settle it, then report the body's problem.
    if (file) await file.result.catch(() => {});
    throw err;
  }
  if (!file) return { fields };
  const result = await file.result;
  return { fields, file: { field: file.field, filename: file.filename, result } };
}

/** Reads and drops what remains of a refused body (bounded), so the answer reaches the client. */
function drain(raw: Readable): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DRAIN_LIMIT_BYTES) {
        raw.off("data", onData);
        raw.pause();
        resolve();
      }
    };
    raw.on("data", onData);
    raw.once("end", () => resolve());
    raw.once("error", () => resolve());
    raw.once("close", () => resolve());
  });
}
