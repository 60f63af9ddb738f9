import type { Migration } from "kysely";
import * as initial from "./001-initial.js";
import * as filesBatches from "./002-files-batches.js";
import * as responsesConversations from "./003-responses-conversations.js";
import * as blobHousekeeping from "./004-blob-housekeeping.js";
import * as vectorStores from "./005-vector-stores.js";
import * as vectorStoreExpiry from "./006-vector-store-expiry.js";
import * as vectorStoreVersions from "./007-vector-store-versions.js";
import * as usageRollup from "./008-usage-rollup.js";

/** Every migration, in order. A static list (no directory scan) works from source and build alike. */
export const MIGRATIONS: Record<string, Migration> = {
  "001-initial": initial,
  "002-files-batches": filesBatches,
  "003-responses-conversations": responsesConversations,
  "004-blob-housekeeping": blobHousekeeping,
  "005-vector-stores": vectorStores,
  "006-vector-store-expiry": vectorStoreExpiry,
  "007-vector-store-versions": vectorStoreVersions,
  "008-usage-rollup": usageRollup,
};
