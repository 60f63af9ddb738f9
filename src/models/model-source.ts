import path from "node:path";

/**
 * Where a configured model comes from: a local file, or a GGUF file in a
 * Hugging Face repository (`hf:owner/repo/path/to/file.gguf[@revision]`).
 */
export type ModelSource = FileModelSource | HfModelSource;

export interface FileModelSource {
  kind: "file";
  path: string;
}

export interface HfModelSource {
  kind: "hf";
  owner: string;
  repo: string;
  /** Path of the file inside the repository, `/`-separated. */
  file: string;
  revision: string;
}

const HF_PREFIX = "hf:";
const FILE_PREFIX = "file:";
const DEFAULT_REVISION = "main";
const NAME_RE = /^[A-Za-z0-9._-]+$/;
// Branch and tag names plus `refs/pr/N`; each `/`-separated part is checked like a path segment.
const REVISION_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Parses a model `source` string from the configuration; throws an Error naming the problem. */
export function parseModelSource(source: string): ModelSource {
  if (source.startsWith(HF_PREFIX)) return parseHfSource(source.slice(HF_PREFIX.length), source);
  const filePath = source.startsWith(FILE_PREFIX) ? source.slice(FILE_PREFIX.length) : source;
  if (filePath.trim() === "") throw new Error(`invalid model source "${source}": empty file path`);
  if (filePath.includes("\0")) throw new Error(`invalid model source: file path contains a NUL character`);
  return { kind: "file", path: filePath };
}

function parseHfSource(spec: string, original: string): HfModelSource {
  const fail = (problem: string): never => {
    throw new Error(`invalid Hugging Face model source "${printable(original)}": ${problem}`);
  };
  const { body, revision } = splitRevision(spec, fail);
  const [owner, repo, ...fileSegments] = body.split("/");
  if (!owner) fail("missing repository owner (expected hf:owner/repo/file.gguf)");
  if (!repo) fail("missing repository name (expected hf:owner/repo/file.gguf)");
  if (fileSegments.length === 0)
    fail("missing file path after owner/repo (expected hf:owner/repo/file.gguf)");
  checkName(owner as string, "owner", fail);
  checkName(repo as string, "repository name", fail);
  const file = fileSegments.join("/");
  checkFilePath(file, fileSegments, fail);
  checkRevision(revision, fail);
  return { kind: "hf", owner: owner as string, repo: repo as string, file, revision };
}

/**
 * Splits `file.gguf@rev` at the last `@`, but only when the part before it
 * ends in `.gguf`: that keeps an `@` inside a directory name from being taken
 * as a revision separator, while revisions such as `refs/pr/1` still work.
 */
function splitRevision(spec: string, fail: (problem: string) => never): { body: string; revision: string } {
  const at = spec.lastIndexOf("@");
  if (at === -1) return { body: spec, revision: DEFAULT_REVISION };
  const body = spec.slice(0, at);
  if (!/\.gguf$/i.test(body)) return { body: spec, revision: DEFAULT_REVISION };
  const revision = spec.slice(at + 1);
  if (revision === "") fail("empty revision after '@'");
  return { body, revision };
}

function checkName(name: string, what: string, fail: (problem: string) => never): void {
  if (!NAME_RE.test(name))
    fail(`${what} "${printable(name)}" may only contain letters, digits, '.', '_' and '-'`);
  // `.` and `..` pass the character check but would walk the cache directory tree.
  if (name === "." || name === "..") fail(`${what} may not be "${name}"`);
}

function checkFilePath(file: string, segments: string[], fail: (problem: string) => never): void {
  if (file.includes("\0")) fail("file path contains a NUL character");
  if (file.includes("\\")) fail("file path contains a backslash; use '/' to separate directories");
  // Other control characters are never legitimate in a file name and would garble logs.
  if ([...file].some(isControlChar)) fail("file path contains a control character");
  for (const segment of segments) {
    if (segment === "") fail("file path contains an empty segment ('//' or a leading/trailing '/')");
    if (segment === "..") fail("file path contains a '..' segment");
    if (segment === ".") fail("file path contains a '.' segment");
  }
  if (!/\.gguf$/i.test(file)) fail(`file "${printable(file)}" is not a .gguf file`);
}

function checkRevision(revision: string, fail: (problem: string) => never): void {
  for (const segment of revision.split("/")) {
    if (!REVISION_SEGMENT_RE.test(segment) || segment === "." || segment === "..") {
      fail(`revision "${printable(revision)}" is not a valid branch, tag or commit name`);
    }
  }
}

/** Keeps NUL and other control characters out of error messages (and terminals). */
function printable(text: string): string {
  return [...text]
    .map((c) => (isControlChar(c) ? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}` : c))
    .join("");
}

function isControlChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code < 0x20 || code === 0x7f;
}

/** Human-readable identity of an hf source, used in log and error messages. */
export function describeHfSource(src: HfModelSource): string {
  return `${src.owner}/${src.repo}/${src.file}@${src.revision}`;
}

/** The hub's download URL for the file: `<base>/<owner>/<repo>/resolve/<revision>/<file>`. */
export function hfDownloadUrl(baseUrl: string, src: HfModelSource): string {
  const base = baseUrl.replace(/\/+$/, "");
  // The revision is one URL segment even when it contains '/' (refs/pr/1), as the hub expects.
  const file = src.file.split("/").map(encodeURIComponent).join("/");
  return `${base}/${encodeURIComponent(src.owner)}/${encodeURIComponent(src.repo)}/resolve/${encodeURIComponent(src.revision)}/${file}`;
}

/**
 * Local cache location: `<dataDir>/models/<owner>/<repo>/<revision>/<file>`.
 * Throws if the result would escape `dataDir`, as a guard for sources that
 * were built by hand rather than by `parseModelSource`.
 */
export function hfCachePath(dataDir: string, src: HfModelSource): string {
  const root = path.resolve(dataDir);
  // Encoding keeps a revision such as refs/pr/1 to a single directory level.
  const target = path.resolve(
    root,
    "models",
    src.owner,
    src.repo,
    encodeURIComponent(src.revision),
    ...src.file.split("/"),
  );
  const relative = path.relative(root, target);
  const escapes = relative === ".." || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
  if (relative === "" || escapes) {
    throw new Error(`model cache path for ${describeHfSource(src)} would leave the data directory ${root}`);
  }
  return target;
}
