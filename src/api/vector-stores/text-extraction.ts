import { extname } from "node:path";
import { convert as htmlToText } from "html-to-text";
import mammoth from "mammoth";
import { extractText as extractPdfText, getDocumentProxy } from "unpdf";
import type { IngestionError } from "../../storage/repositories/vector-store-types.js";

/** A file that cannot be indexed, with the code the API reports it under. */
export class IngestionFailure extends Error {
  constructor(
    readonly code: IngestionError["code"],
    message: string,
  ) {
    super(message);
  }
}

type Kind = "text" | "json" | "html" | "pdf" | "docx";

/** Extensions read as plain text: prose, Markdown, data and source code. */
const TEXT_EXTENSIONS = new Set(
  (
    ".txt .text .md .markdown .rst .tex .csv .tsv .jsonl .ndjson .yaml .yml .toml .ini .xml .log " +
    ".c .h .cc .cpp .cxx .hpp .cs .css .scss .go .java .kt .kts .scala .js .mjs .cjs .jsx .ts .mts .cts " +
    ".tsx .php .py .rb .rs .sh .bash .zsh .sql .swift .lua .r .pl .pm .dart .ex .exs .erl .hs .ml " +
    ".vue .svelte .graphql .proto"
  ).split(" "),
);

function kindOf(filename: string, mimeType: string, bytes: Buffer): Kind | undefined {
  const ext = extname(filename).toLowerCase();
  if (ext === ".pdf" || mimeType === "application/pdf") return "pdf";
  if (
    ext === ".docx" ||
    mimeType === "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
  )
    return "docx";
  if (ext === ".html" || ext === ".htm" || mimeType === "text/html") return "html";
  if (ext === ".json" || mimeType === "application/json") return "json";
  if (TEXT_EXTENSIONS.has(ext) || mimeType.startsWith("text/")) return "text";
  // No telling name: the bytes say PDF, or text that decodes as UTF-8.
  if (bytes.subarray(0, 5).toString("latin1") === "%PDF-") return "pdf";
  if (ext === "" && looksLikeText(bytes)) return "text";
  return undefined;
}

function looksLikeText(bytes: Buffer): boolean {
  const head = bytes.subarray(0, 4096);
  if (head.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(0, lastCharBoundary(head)));
    return true;
  } catch {
    return false;
  }
}

/** Where a prefix of `bytes` ends without cutting a UTF-8 character in two. */
function lastCharBoundary(bytes: Uint8Array): number {
  let end = bytes.length;
  // Step back over continuation bytes (10xxxxxx) and the lead byte they belong to.
  for (let i = 1; i <= 3 && end - i >= 0; i++) {
    const b = bytes[end - i] as number;
    if ((b & 0xc0) !== 0x80) {
      if (b >= 0xc0) end -= i;
      break;
    }
  }
  return end;
}

function utf8(bytes: Buffer): string {
  if (bytes.includes(0)) throw new IngestionFailure("unsupported_file", "The file is binary, not text.");
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new IngestionFailure("invalid_file", "The file is not valid UTF-8 text.");
  }
}

/**
 * The text of a file, page by page (PDF pages; one page for everything else), as it will be
 * chunked and returned by …/content. Throws IngestionFailure for files that cannot be read.
 */
export async function extractPages(bytes: Buffer, filename: string, mimeType: string): Promise<string[]> {
  const kind = kindOf(filename, mimeType.toLowerCase(), bytes);
  if (!kind) {
    throw new IngestionFailure(
      "unsupported_file",
      `Files of this type (${extname(filename).slice(0, 16) || mimeType.slice(0, 64)}) cannot be indexed: use text, Markdown, JSON, HTML, source code, PDF or DOCX.`,
    );
  }
  const pages = await readKind(kind, bytes);
  const cleaned = pages.map((p) => p.replace(/\r\n?/g, "\n"));
  if (cleaned.every((p) => p.trim() === ""))
    throw new IngestionFailure("invalid_file", "The file holds no text to index.");
  return cleaned;
}

async function readKind(kind: Kind, bytes: Buffer): Promise<string[]> {
  switch (kind) {
    case "text":
      return [utf8(bytes)];
    case "json": {
      const text = utf8(bytes);
      try {
        JSON.parse(text);
      } catch {
        throw new IngestionFailure("invalid_file", "The file is not valid JSON.");
      }
      return [text];
    }
    case "html":
      return [
        htmlToText(utf8(bytes), {
          wordwrap: false,
          selectors: [
            { selector: "a", options: { ignoreHref: true } },
            { selector: "img", format: "skip" },
            // Text keeps its case: headings are not shouted.
            ...["h1", "h2", "h3", "h4", "h5", "h6"].map((selector) => ({
              selector,
              options: { uppercase: false },
            })),
            { selector: "table", options: { uppercaseHeaderCells: false } },
          ],
        }),
      ];
    case "pdf":
      return readPdf(bytes);
    case "docx":
      return readDocx(bytes);
  }
}

async function readPdf(bytes: Buffer): Promise<string[]> {
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0, isEvalSupported: false });
  } catch {
    throw new IngestionFailure("invalid_file", "The PDF could not be read: it is damaged or not a PDF.");
  }
  try {
    const { text } = await extractPdfText(pdf, { mergePages: false });
    return text;
  } catch {
    throw new IngestionFailure("invalid_file", "The text of the PDF could not be read.");
  } finally {
    await pdf.destroy().catch(() => {});
  }
}

async function readDocx(bytes: Buffer): Promise<string[]> {
  try {
    const result = await mammoth.extractRawText({ buffer: bytes });
    return [result.value];
  } catch {
    throw new IngestionFailure(
      "invalid_file",
      "The DOCX file could not be read: it is damaged or not a DOCX file.",
    );
  }
}
