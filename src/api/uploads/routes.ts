import type { FastifyInstance } from "fastify";
import { invalidRequest } from "../../core/errors.js";
import { acceptMultipart, readMultipart } from "../../http/multipart.js";
import { parseBody } from "../../http/validation.js";
import type { FileService } from "../files/service.js";
import { encodeUpload, encodeUploadPart } from "./encode.js";
import { completeUploadSchema, createUploadSchema } from "./schema.js";
import { MAX_PART_BYTES, type UploadService } from "./service.js";

export interface UploadRouteOptions {
  uploads: UploadService;
  files: FileService;
}

type UploadParams = { Params: { upload_id: string } };

/** /v1/uploads: create, add parts (multipart `data`, streamed), complete into a File, cancel. */
export async function uploadRoutes(app: FastifyInstance, opts: UploadRouteOptions): Promise<void> {
  const { uploads, files } = opts;
  acceptMultipart(app);

  app.post("/v1/uploads", async (request) => {
    const body = parseBody(createUploadSchema, request.body);
    return encodeUpload(await uploads.create(request.principal.projectId, body));
  });

  app.post<UploadParams>("/v1/uploads/:upload_id/parts", async (request) => {
    const upload = await uploads.pending(request.principal.projectId, request.params.upload_id);
    const maxBytes = Math.min(MAX_PART_BYTES, upload.bytes);
    const form = await readMultipart(request, {
      maxFileBytes: maxBytes,
      onFile: async (part) => {
        if (part.field !== "data") {
          part.stream.resume();
          return undefined;
        }
        return files.storeBytes(part.stream, maxBytes);
      },
    });
    const stored = form.file?.result;
    if (!stored)
      throw invalidRequest("Missing required parameter: 'data'.", "data", "missing_required_parameter");
    try {
      return encodeUploadPart(await uploads.addPart(upload, stored.blobKey, stored.bytes));
    } catch (err) {
      await files.discard(stored.blobKey);
      throw err;
    }
  });

  app.post<UploadParams>("/v1/uploads/:upload_id/complete", async (request) => {
    const body = parseBody(completeUploadSchema, request.body);
    const done = await uploads.complete(
      request.principal.projectId,
      request.params.upload_id,
      body.part_ids,
      body.md5,
    );
    return encodeUpload(done.upload, done.file);
  });

  app.post<UploadParams>("/v1/uploads/:upload_id/cancel", async (request) =>
    encodeUpload(await uploads.cancel(request.principal.projectId, request.params.upload_id)),
  );
}
