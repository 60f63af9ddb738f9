import type { StoredFile, StoredUpload, StoredUploadPart } from "../../storage/repositories/types.js";
import { encodeFile, unixSeconds } from "../files/encode.js";

export function encodeUpload(upload: StoredUpload, file?: StoredFile): object {
  return {
    id: upload.id,
    object: "upload",
    bytes: upload.bytes,
    created_at: unixSeconds(upload.createdAt),
    filename: upload.filename,
    purpose: upload.purpose,
    status: upload.status,
    expires_at: unixSeconds(upload.expiresAt),
    file: file ? encodeFile(file) : null,
  };
}

export function encodeUploadPart(part: StoredUploadPart): object {
  return {
    id: part.id,
    object: "upload.part",
    created_at: unixSeconds(part.createdAt),
    upload_id: part.uploadId,
  };
}
