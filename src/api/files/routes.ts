import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { invalidRequest } from "../../core/errors.js";
import { acceptMultipart, readMultipart } from "../../http/multipart.js";
import { parseBody } from "../../http/validation.js";
import { encodeFile, encodePage } from "./encode.js";
import { createFileFieldsSchema, foldFormFields, listFilesQuerySchema } from "./schema.js";
import type { FileService } from "./service.js";

export interface FileRouteOptions {
  files: FileService;
}

/** /v1/files: upload (multipart, streamed to the blob store), list, retrieve, delete, content. */
export async function fileRoutes(app: FastifyInstance, opts: FileRouteOptions): Promise<void> {
  const service = opts.files;
  acceptMultipart(app);

  app.post("/v1/files", async (request) => {
    const form = await readMultipart(request, {
      maxFileBytes: service.maxBytes,
      onFile: async (part) => {
        if (part.field !== "file") {
          part.stream.resume();
          return undefined;
        }
        // Only the bytes go to the store while the body streams in; the file is recorded once the
        // whole form (its purpose may come after the file) is read and valid.
        return {
          ...(await service.storeBytes(part.stream)),
          filename: part.filename,
          mimeType: part.mimeType,
        };
      },
    });
    const stored = form.file?.result;
    if (!stored)
      throw invalidRequest("Missing required parameter: 'file'.", "file", "missing_required_parameter");
    let fields: ReturnType<typeof createFileFieldsSchema.parse>;
    try {
      fields = parseBody(createFileFieldsSchema, foldFormFields(form.fields));
    } catch (err) {
      await service.discard(stored.blobKey);
      throw err;
    }
    const file = await service.record(
      {
        projectId: request.principal.projectId,
        filename: stored.filename,
        purpose: fields.purpose,
        mimeType: stored.mimeType,
        expiresAfterSeconds: fields.expires_after?.seconds,
      },
      stored.blobKey,
      stored.bytes,
    );
    return encodeFile(file);
  });

  app.get("/v1/files", async (request) => {
    const query = parseBody(listFilesQuerySchema, request.query ?? {});
    const files = await service.list(request.principal.projectId, query);
    return encodePage(files, query.limit, encodeFile, (f) => f.id);
  });

  app.get<{ Params: { file_id: string } }>("/v1/files/:file_id", async (request) =>
    encodeFile(await service.get(request.principal.projectId, request.params.file_id)),
  );

  app.delete<{ Params: { file_id: string } }>("/v1/files/:file_id", async (request) => {
    const removed = await service.delete(request.principal.projectId, request.params.file_id);
    return { id: removed.id, object: "file", deleted: true };
  });

  app.get<{ Params: { file_id: string } }>("/v1/files/:file_id/content", async (request, reply) => {
    const file = await service.get(request.principal.projectId, request.params.file_id);
    return reply
      .type(file.mimeType)
      .header("content-length", String(file.bytes))
      .header("content-disposition", `attachment; filename="${encodeURIComponent(file.filename)}"`)
      .send(Readable.from(service.content(file)));
  });
}
