import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject } from "ajv";
import { parse as parseYaml } from "yaml";
import { ConfigError, type Env } from "../../config-vars.js";
import type { ConnectorSettings } from "../connector.js";
import type { KindRegistry } from "./registry.js";

/** How much a connector's queue holds between its source and the write path. */
export interface QueueLimits {
  maxPoints: number;
  maxBytes: number;
}

export const DEFAULT_QUEUE: QueueLimits = { maxPoints: 100_000, maxBytes: 64 * 1024 * 1024 };

/** One entry of the connectors file, checked: the common settings, the kind's options, the queue bounds. */
export interface ConnectorEntry {
  settings: ConnectorSettings;
  queue: QueueLimits;
}

/** The connectors file is invalid: start-up stops with exit code 2 and this message. */
export class ConnectorsFileError extends ConfigError {
  constructor(file: string, problems: readonly string[]) {
    super(`I3XD_CONNECTORS_FILE ${file}:\n  ${problems.join("\n  ")}`);
    this.name = "ConnectorsFileError";
  }
}

/** Fields every entry has, whatever its kind; everything else in an entry is the kind's options. */
const COMMON_FIELDS = new Set(["name", "kind", "required", "onLoss", "queue"]);

/** A name is a metric label, a log field, a lock key and the owner recorded on objects: kept plain. */
const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";

const commonSchema = {
  type: "object",
  properties: {
    name: { type: "string", pattern: NAME_PATTERN },
    kind: { type: "string" },
    required: { type: "boolean" },
    onLoss: { enum: ["bad", "uncertain"] },
    queue: {
      type: "object",
      properties: {
        maxPoints: { type: "integer", minimum: 1, maximum: 100_000_000 },
        maxBytes: { type: "integer", minimum: 1024, maximum: 1024 ** 4 },
      },
      additionalProperties: false,
    },
  },
  required: ["name", "kind"],
} as const;

const fileSchema = {
  type: "object",
  properties: { connectors: { type: "array" } },
  required: ["connectors"],
  additionalProperties: false,
} as const;

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false, coerceTypes: false });
const checkCommon = ajv.compile(commonSchema);
const checkFile = ajv.compile(fileSchema);

/**
 * Reads the connectors file (YAML, or JSON, which is YAML too): `connectors:` lists the entries, each flat:
 * `name`, `kind`, `required`, `onLoss`, `queue` and the kind's own fields. `${VAR}` in any string is
 * replaced by that environment variable (secrets stay out of the file); `$${` stands for a literal `${`.
 * Every problem is collected and named by connector and field.
 */
export function loadConnectorsFile(file: string, env: Env, kinds: KindRegistry): ConnectorEntry[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConnectorsFileError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    throw new ConnectorsFileError(file, [`not valid YAML or JSON: ${(err as Error).message}`]);
  }
  if (!checkFile(doc)) {
    throw new ConnectorsFileError(file, [
      "the file must be an object with a `connectors` list (and nothing else), e.g. `connectors: [...]`",
    ]);
  }
  const problems: string[] = [];
  const entries: ConnectorEntry[] = [];
  const names = new Set<string>();
  (doc as { connectors: unknown[] }).connectors.forEach((raw, i) => {
    const name =
      raw !== null && typeof raw === "object" && typeof (raw as { name?: unknown }).name === "string"
        ? (raw as { name: string }).name
        : undefined;
    const where = name === undefined ? `connectors[${i}]` : `connector "${name}" (connectors[${i}])`;
    const say = (field: string, text: string) => problems.push(`${where}: field "${field}" ${text}`);
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      problems.push(`${where}: must be an object with at least name and kind`);
      return;
    }
    if (name !== undefined) {
      if (names.has(name)) say("name", `"${name}" is used by an earlier connector`);
      names.add(name);
    }
    const entry = substitute(raw, env, "", say) as Record<string, unknown>;
    if (!checkCommon(entry)) {
      for (const e of checkCommon.errors ?? []) say(fieldOf(e), messageOf(e));
      return;
    }
    const common = entry as { name: string; kind: string; required?: boolean; onLoss?: "bad" | "uncertain" };
    const kind = kinds.get(common.kind);
    if (kind === undefined) {
      const known = kinds.names();
      say(
        "kind",
        `"${common.kind}" is not a known kind (${known.length > 0 ? `known: ${known.join(", ")}` : "none is built in"})`,
      );
      return;
    }
    const options: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entry)) if (!COMMON_FIELDS.has(key)) options[key] = value;
    let checkOptions: ReturnType<Ajv["compile"]>;
    try {
      checkOptions = ajv.compile(kind.optionsSchema);
    } catch (err) {
      problems.push(
        `${where}: the schema of kind "${kind.kind}" does not compile: ${(err as Error).message}`,
      );
      return;
    }
    if (!checkOptions(options)) {
      for (const e of checkOptions.errors ?? []) say(fieldOf(e), messageOf(e));
      return;
    }
    const deeper = kind.check?.(options) ?? [];
    if (deeper.length > 0) {
      for (const p of deeper) say(p.field, p.problem);
      return;
    }
    const queue = (entry.queue ?? {}) as Partial<QueueLimits>;
    entries.push({
      settings: {
        name: common.name,
        kind: common.kind,
        required: common.required ?? false,
        onLoss: common.onLoss ?? "bad",
        options,
      },
      queue: {
        maxPoints: queue.maxPoints ?? DEFAULT_QUEUE.maxPoints,
        maxBytes: queue.maxBytes ?? DEFAULT_QUEUE.maxBytes,
      },
    });
  });
  if (problems.length > 0) throw new ConnectorsFileError(file, problems);
  return entries;
}

const VARIABLE = /\$\$\{|\$\{([^}]*)\}/g;

/** A copy of `value` with `${VAR}` replaced in every string; an unset variable is a problem of its field. */
function substitute(
  value: unknown,
  env: Env,
  at: string,
  say: (field: string, text: string) => void,
): unknown {
  if (typeof value === "string") {
    return value.replace(VARIABLE, (match, name: string | undefined) => {
      if (match === "$${") return "${";
      if (name === undefined || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        say(at, `has "${match}", which is not a variable reference such as \${MQTT_PASSWORD}`);
        return match;
      }
      const v = env[name];
      if (v === undefined) {
        say(at, `refers to the environment variable ${name}, which is not set`);
        return match;
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, env, `${at}[${i}]`, say));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "__proto__") continue;
      out[k] = substitute(v, env, at === "" ? k : `${at}.${k}`, say);
    }
    return out;
  }
  return value;
}

/** The field an ajv error is about, as a dotted path (`tls.ca`, `subscriptions[0].qos`). */
function fieldOf(e: ErrorObject): string {
  const path = e.instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === "" ? p : `${acc}.${p}`), "");
  const extra =
    e.keyword === "required"
      ? (e.params as { missingProperty: string }).missingProperty
      : e.keyword === "additionalProperties"
        ? (e.params as { additionalProperty: string }).additionalProperty
        : undefined;
  if (extra === undefined) return path || "(entry)";
  return path === "" ? extra : `${path}.${extra}`;
}

function messageOf(e: ErrorObject): string {
  if (e.keyword === "required") return "is required";
  if (e.keyword === "additionalProperties") return "is not a known setting of this kind";
  if (e.keyword === "enum")
    return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
  return e.message ?? "is invalid";
}
