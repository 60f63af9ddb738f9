import type { Principal } from "../../auth/principal.js";
import { ServiceError } from "../../core/errors.js";
import { randomId } from "../../core/ids.js";
import { checkFilter } from "../vector-stores/filters.js";
import type { FileSearchTool } from "../vector-stores/schema.js";
import type { SearchResult, VectorStoreSearch } from "../vector-stores/search.js";
import type { VectorStoreService } from "../vector-stores/service.js";
import type { ResponseEvent } from "./encode.js";
import type { StoredItem } from "./service.js";

export const FILE_SEARCH_RESULTS = "file_search_call.results";

export interface FileSearchDeps {
  service: VectorStoreService;
  search: VectorStoreSearch;
}

/** What a file search did for a response: its output item, the context the model gets, the files to cite. */
export interface FileSearchOutcome {
  item: StoredItem;
  /** Where the excerpts go: the conversation with them placed before its last user message. */
  withContext(items: readonly StoredItem[]): StoredItem[];
  annotations: object[];
}

type Tool = FileSearchTool | { type: "function" };

/**
 * Runs the request's file_search tool, if it has one and tool_choice allows tools: the last user
 * message is the query, every named store (the caller's own; others are 404) is searched with the
 * tool's options. The model never decides whether to search: a local model cannot call a hosted
 * tool, so the search runs first and the model answers with the excerpts in its context.
 */
export async function runFileSearch(
  deps: FileSearchDeps | undefined,
  principal: Principal,
  request: { tools?: readonly Tool[]; tool_choice?: unknown; include?: readonly string[] | null },
  input: readonly StoredItem[],
  signal: AbortSignal,
): Promise<FileSearchOutcome | undefined> {
  const tools = request.tools ?? [];
  const index = tools.findIndex((t) => t.type === "file_search");
  const tool = tools[index];
  if (tool?.type !== "file_search" || request.tool_choice === "none") return undefined;
  if (!deps) {
    throw new ServiceError(
      "invalid_request",
      "This server has no vector stores, so the file_search tool cannot run.",
      { param: `tools[${index}]`, code: "unsupported_tool" },
    );
  }
  if (tool.filters) checkFilter(tool.filters, `tools[${index}].filters`);
  const stores = [];
  for (const [i, id] of tool.vector_store_ids.entries())
    stores.push(
      await deps.service.getActive(principal.projectId, id, `tools[${index}].vector_store_ids[${i}]`),
    );
  const query = lastUserText(input);
  if (query === undefined) return undefined;
  const hybrid = tool.ranking_options?.hybrid_search;
  const results = await deps.search.search(
    principal,
    stores,
    {
      queries: [query],
      maxResults: tool.max_num_results ?? 10,
      filters: tool.filters ?? undefined,
      ranker: tool.ranking_options?.ranker ?? "auto",
      scoreThreshold: tool.ranking_options?.score_threshold ?? 0,
      weights: hybrid ? { embedding: hybrid.embedding_weight, text: hybrid.text_weight } : undefined,
      endpoint: "responses",
    },
    signal,
  );
  for (const store of stores) await deps.service.touch(store);
  const include = (request.include ?? []).includes(FILE_SEARCH_RESULTS);
  const item: StoredItem = {
    id: `fs_${randomId()}`,
    type: "file_search_call",
    status: "completed",
    queries: [query],
    results: include
      ? results.map((r) => ({
          file_id: r.fileId,
          filename: r.filename,
          text: r.text,
          score: r.score,
          attributes: r.attributes ?? {},
        }))
      : null,
  };
  const cited = [...new Map(results.map((r) => [r.fileId, r])).values()];
  const annotations = cited.map((r, i) => ({
    type: "file_citation",
    file_id: r.fileId,
    filename: r.filename,
    index: i,
  }));
  const excerpts = contextMessage(results);
  return {
    item,
    annotations,
    withContext: (items) => {
      if (!excerpts) return [...items];
      const last = findLastUserIndex(items);
      return last < 0 ? [...items, excerpts] : [...items.slice(0, last), excerpts, ...items.slice(last)];
    },
  };
}

/** The events that announce a finished search as the first output item. */
export function fileSearchEvents(item: StoredItem, outputIndex: number): ResponseEvent[] {
  const searching = { ...item, status: "in_progress", results: null };
  const at = { output_index: outputIndex, item_id: item.id };
  return [
    { type: "response.output_item.added", output_index: outputIndex, item: searching },
    { type: "response.file_search_call.in_progress", ...at },
    { type: "response.file_search_call.searching", ...at },
    { type: "response.file_search_call.completed", ...at },
    { type: "response.output_item.done", output_index: outputIndex, item },
  ];
}

function findLastUserIndex(items: readonly StoredItem[]): number {
  for (let i = items.length - 1; i >= 0; i--)
    if (items[i]?.type === "message" && items[i]?.role === "user") return i;
  return -1;
}

function lastUserText(items: readonly StoredItem[]): string | undefined {
  const last = items[findLastUserIndex(items)];
  if (!last) return undefined;
  const content = last.content;
  const text =
    typeof content === "string"
      ? content
      : Array.isArray(content)
        ? content
            .filter((p): p is { type: string; text: string } => typeof p?.text === "string")
            .map((p) => p.text)
            .join("\n")
        : "";
  const query = text.trim().slice(0, 4096);
  return query === "" ? undefined : query;
}

function contextMessage(results: readonly SearchResult[]): StoredItem | undefined {
  if (results.length === 0) return undefined;
  const blocks = results.map((r, i) => `[${i + 1}] ${r.filename}\n${r.text}`);
  const text = `File search found these excerpts for the next question. Use them where they answer it.\n\n${blocks.join("\n\n")}`;
  return {
    type: "message",
    id: `msg_${randomId()}`,
    role: "developer",
    status: "completed",
    content: [{ type: "input_text", text }],
  };
}
