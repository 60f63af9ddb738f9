import { invalidRequest } from "../../core/errors.js";
import type { FileAttributes, FileAttributeValue } from "../../storage/repositories/vector-store-types.js";
import type { ComparisonFilter, CompoundFilter, Filter } from "./schema.js";

const MAX_DEPTH = 8;

const isCompound = (filter: Filter): filter is CompoundFilter =>
  filter.type === "and" || filter.type === "or";

/**
 * Checks what the schema cannot say: `in`/`nin` compare with a list, the others with one value,
 * and compound filters nest at most MAX_DEPTH deep. `param` names the field in errors.
 */
export function checkFilter(filter: Filter, param: string, depth = 0): void {
  if (depth > MAX_DEPTH) throw invalidRequest(`Filters may nest at most ${MAX_DEPTH} levels deep.`, param);
  if (isCompound(filter)) {
    filter.filters.forEach((f, i) => {
      checkFilter(f, `${param}.filters[${i}]`, depth + 1);
    });
    return;
  }
  const list = Array.isArray(filter.value);
  if ((filter.type === "in" || filter.type === "nin") !== list) {
    throw invalidRequest(
      list
        ? `A list value needs the 'in' or 'nin' comparison, not '${filter.type}'.`
        : `The '${filter.type}' comparison needs a list value.`,
      `${param}.value`,
      "invalid_value",
    );
  }
}

/** Whether a file's attributes pass the filter. A comparison with an attribute the file lacks fails, but ne and nin pass. */
export function matchesFilter(filter: Filter, attributes: FileAttributes | null): boolean {
  if (isCompound(filter)) {
    const test = (f: Filter) => matchesFilter(f, attributes);
    return filter.type === "and" ? filter.filters.every(test) : filter.filters.some(test);
  }
  return compare(filter, attributes?.[filter.key]);
}

function compare(filter: ComparisonFilter, actual: FileAttributeValue | undefined): boolean {
  const expected = filter.value;
  switch (filter.type) {
    case "eq":
      return actual !== undefined && actual === expected;
    case "ne":
      return actual !== expected;
    case "in":
      return actual !== undefined && (expected as (string | number)[]).some((v) => v === actual);
    case "nin":
      return !(expected as (string | number)[]).some((v) => v === actual);
    default: {
      // Numbers compare as numbers, strings (ISO dates, versions) in code-point order; mixed never.
      if (actual === undefined || typeof actual !== typeof expected || typeof actual === "boolean")
        return false;
      const a = actual as number | string;
      const b = expected as number | string;
      if (filter.type === "gt") return a > b;
      if (filter.type === "gte") return a >= b;
      if (filter.type === "lt") return a < b;
      return a <= b;
    }
  }
}
