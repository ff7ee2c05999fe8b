import { Ajv, type ErrorObject, type Options, type ValidateFunction } from "ajv";
import { Ajv2019 } from "ajv/dist/2019.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { I3xError } from "../domain/errors.js";
import type { JsonSchema, ObjectRecord, ObjectType } from "../domain/model.js";
import { getLogger } from "../observability/logger.js";

const log = getLogger("i3xd.schemas");

// ajv-formats is CommonJS: under NodeNext its default import is the module object, whose `default` is the plugin.
const addFormats = addFormatsModule.default;

const AJV_OPTIONS: Options = {
  // Type schemas come from imported models and may carry vendor keywords (units, descriptions in other
  // vocabularies); strict mode would refuse to compile them.
  strict: false,
  allErrors: true,
  // Two types may declare the same `$id`; keeping compiled schemas out of the instance's registry stops
  // them from colliding.
  addUsedSchema: false,
  // Values are validated as written; never coerce or fill them in.
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
};

type Dialect = "draft-07" | "2019-09" | "2020-12";

function dialectOf(schema: JsonSchema): Dialect {
  const uri = typeof schema.$schema === "string" ? schema.$schema : "";
  if (uri.includes("2020-12")) return "2020-12";
  if (uri.includes("2019-09")) return "2019-09";
  return "draft-07";
}

interface Entry {
  /** The schema object last seen for the type: an identical object skips the fingerprint comparison. */
  schema: JsonSchema;
  fingerprint: string;
  validate?: ValidateFunction;
}

/**
 * Validates object values against their object type's JSON Schema. Each schema is compiled once, on first
 * use, and kept until the type's schema changes: `register` compares what the store holds now with what was
 * compiled, so a model import that changes a type is picked up by the next write without anyone having to
 * remember to invalidate. Nullability comes only from the schema (`["number","null"]`); nothing is inferred.
 */
export class SchemaRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly instances = new Map<Dialect, Ajv>();

  /** Makes these types' current schemas the ones `validate` uses (cheap when nothing changed). */
  register(types: Iterable<ObjectType>): void {
    for (const type of types) {
      const known = this.entries.get(type.elementId);
      if (known && known.schema === type.schema) continue;
      const fingerprint = JSON.stringify(type.schema);
      if (known && known.fingerprint === fingerprint) {
        known.schema = type.schema;
        continue;
      }
      this.entries.set(type.elementId, { schema: type.schema, fingerprint });
    }
  }

  /** Forgets one type's (or every type's) compiled schema. */
  invalidate(typeElementId?: string): void {
    if (typeElementId === undefined) {
      this.entries.clear();
      return;
    }
    const prefix = extendedKey(typeElementId, "");
    for (const key of this.entries.keys()) {
      if (key === typeElementId || key.startsWith(prefix)) this.entries.delete(key);
    }
  }

  has(typeElementId: string): boolean {
    return this.entries.has(typeElementId);
  }

  /**
   * Checks a value against the type's schema. Returns null when it conforms, otherwise a sentence naming
   * the offending field. Throws `I3xError(500)` when the type is unknown or its schema cannot be compiled:
   * that is a fault of the stored model, not of the value.
   */
  validate(typeElementId: string, value: unknown): string | null {
    const entry = this.entries.get(typeElementId);
    if (!entry)
      throw new I3xError(500, `Object type ${typeElementId} is not registered with the schema registry`);
    return this.run(typeElementId, entry, value);
  }

  /**
   * Validates the value of one object. An extended object (`isExtended`) may carry attributes its type does
   * not declare: its declared fields are still checked, the extra ones against `schemaExtensions` when given.
   */
  validateObject(object: ObjectRecord, value: unknown): string | null {
    if (!object.isExtended) return this.validate(object.typeElementId, value);
    const base = this.entries.get(object.typeElementId);
    if (!base) return this.validate(object.typeElementId, value);
    const extensions = object.schemaExtensions ?? {};
    const key = extendedKey(object.typeElementId, JSON.stringify(extensions));
    let entry = this.entries.get(key);
    if (!entry || entry.fingerprint !== base.fingerprint) {
      entry = { schema: extendSchema(base.schema, extensions), fingerprint: base.fingerprint };
      this.entries.set(key, entry);
    }
    return this.run(object.typeElementId, entry, value);
  }

  private run(typeElementId: string, entry: Entry, value: unknown): string | null {
    if (!entry.validate) entry.validate = this.compile(typeElementId, entry.schema);
    const validate = entry.validate;
    return validate(value) ? null : describeErrors(validate.errors ?? [], value);
  }

  private compile(typeElementId: string, schema: JsonSchema): ValidateFunction {
    try {
      return this.instance(dialectOf(schema)).compile(schema);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      log.error({ typeElementId, reason }, "Object type schema does not compile");
      throw new I3xError(500, `The schema of object type ${typeElementId} cannot be compiled: ${reason}`);
    }
  }

  private instance(dialect: Dialect): Ajv {
    let ajv = this.instances.get(dialect);
    if (!ajv) {
      ajv =
        dialect === "2020-12"
          ? new Ajv2020(AJV_OPTIONS)
          : dialect === "2019-09"
            ? new Ajv2019(AJV_OPTIONS)
            : new Ajv(AJV_OPTIONS);
      addFormats(ajv);
      this.instances.set(dialect, ajv);
    }
    return ajv;
  }
}

function extendedKey(typeElementId: string, extensions: string): string {
  return `${typeElementId}\u0000extended\u0000${extensions}`;
}

/** The type's schema with the object's extension attributes declared and undeclared attributes allowed. */
function extendSchema(schema: JsonSchema, extensions: Record<string, unknown>): JsonSchema {
  const { additionalProperties: _a, unevaluatedProperties: _u, ...rest } = schema;
  const properties = (schema.properties ?? {}) as Record<string, unknown>;
  return { ...rest, properties: { ...extensions, ...properties } };
}

const MAX_REPORTED = 3;

/** Turns Ajv errors into one sentence a client can act on, e.g. `value.flowRate must be number`. */
export function describeErrors(errors: readonly ErrorObject[], value: unknown): string {
  // `allErrors` reports one line per failed branch of a type union or `anyOf`; the leaf errors say more.
  const useful = errors.filter((e) => e.keyword !== "anyOf" && e.keyword !== "oneOf" && e.keyword !== "if");
  const list = (useful.length > 0 ? useful : errors).slice();
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const e of list) {
    const text = describeError(e, value);
    if (seen.has(text)) continue;
    seen.add(text);
    parts.push(text);
  }
  const shown = parts.slice(0, MAX_REPORTED).join("; ");
  const more = parts.length > MAX_REPORTED ? ` (and ${parts.length - MAX_REPORTED} more)` : "";
  return `Value does not match the object type schema: ${shown}${more}`;
}

function describeError(e: ErrorObject, root: unknown): string {
  const path = fieldPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "required":
      return `${path} is missing required field ${JSON.stringify(params.missingProperty)}`;
    case "additionalProperties":
      return `${path} has field ${JSON.stringify(params.additionalProperty)} that the type does not declare`;
    case "type":
      if (valueAt(root, e.instancePath) === null)
        return `${path} is null but the schema does not declare it nullable`;
      return `${path} must be of type ${Array.isArray(params.type) ? params.type.join(" or ") : params.type}`;
    case "enum":
      return `${path} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return `${path} ${e.message ?? "is invalid"}`;
  }
}

/** `/flow/0/rate` → `value.flow[0].rate`. */
function fieldPath(instancePath: string): string {
  if (!instancePath) return "value";
  let out = "value";
  for (const raw of instancePath.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    out += /^\d+$/.test(seg)
      ? `[${seg}]`
      : /^[A-Za-z_$][\w$]*$/.test(seg)
        ? `.${seg}`
        : `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function valueAt(root: unknown, instancePath: string): unknown {
  let cur: unknown = root;
  if (!instancePath) return cur;
  for (const raw of instancePath.split("/").slice(1)) {
    if (cur === null || typeof cur !== "object") return undefined;
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}
