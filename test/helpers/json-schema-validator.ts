import { Ajv } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

/**
 * A reference validator for grammar tests: ajv with ajv-formats in full mode (real month lengths,
 * leap years). Draft 2020-12 by default; draft 7 for the `items: [...]` tuple form.
 */
const validators = {
  "2020-12": make(new Ajv2020({ strict: false })),
  "07": make(new Ajv({ strict: false })),
};

function make(ajv: Ajv | Ajv2020): (schema: object | boolean) => (value: unknown) => boolean {
  addFormatsModule.default(ajv);
  return (schema) => {
    const validate = ajv.compile(schema);
    return (value) => validate(value) === true;
  };
}

export function schemaValidator(
  schema: object | boolean,
  draft: "2020-12" | "07" = "2020-12",
): (value: unknown) => boolean {
  return validators[draft](schema);
}
