import sparkplugPayload from "sparkplug-payload";
import type { UMetric } from "sparkplug-payload/lib/sparkplugbpayload.js";
import protoRoot from "sparkplug-payload/lib/sparkplugPayloadProto.js";
import {
  DATASET,
  DATATYPE_NAMES,
  readScalar,
  TEMPLATE,
  toBigUint,
  toSafeNumber,
  type Uint64Field,
  ValueError,
  type ValueFields,
} from "./datatypes.js";

/**
 * Sparkplug B payloads through `sparkplug-payload` (Eclipse Tahu's protobuf definitions compiled by
 * protobufjs). Decoding reads the library's protobuf messages and turns each value into JSON by its
 * datatype here, because the library's convenience layer (1.0.3) loses the sign of UInt32 values above
 * 2^31, returns 64-bit values as `Long` without converting them, throws on DataSets with integer columns
 * and does not decode arrays. Encoding (commands) uses the library's `encodePayload` as it is.
 */

const Payload = protoRoot.org.eclipse.tahu.protobuf.Payload;
const codec = sparkplugPayload.get("spBv1.0");
if (!codec) throw new Error("sparkplug-payload does not know the spBv1.0 namespace");
const encoder = codec;

export interface TemplateValue {
  templateRef?: string;
  isDefinition: boolean;
  version?: string;
  metrics: SparkplugMetric[];
  parameters: Record<string, unknown>;
}

export interface SparkplugMetric {
  name?: string;
  /** Aliases are uint64 on the wire; kept as their decimal text so any of them is a map key. */
  alias?: string;
  datatype: number;
  timestampMs?: number;
  isHistorical: boolean;
  isTransient: boolean;
  isNull: boolean;
  /** The metric's PropertySet as JSON (`Quality`, `engUnit`, `description`, …). */
  properties: Record<string, unknown>;
  /** JSON value for scalars, arrays and DataSets; the template for Templates; null when `isNull`. */
  value: unknown;
  /** A numeric value JSON cannot carry (NaN, ±∞) made the value null. */
  unrepresentable: boolean;
}

export interface SparkplugPayload {
  timestampMs?: number;
  seq?: number;
  metrics: SparkplugMetric[];
}

/** Why a payload could not be decoded (counted as `invalid`). */
export class PayloadError extends Error {}

type Proto = Record<string, unknown>;

const has = (o: object, key: string) => Object.hasOwn(o, key);

/** Decodes one payload; throws PayloadError for anything that is not a Sparkplug B payload. */
export function decodeSparkplug(bytes: Uint8Array): SparkplugPayload {
  let raw: Proto;
  try {
    raw = Payload.decode(bytes) as unknown as Proto;
  } catch (err) {
    throw new PayloadError(`not a Sparkplug B payload: ${(err as Error).message}`);
  }
  try {
    return {
      timestampMs: has(raw, "timestamp") ? msOf(raw.timestamp as Uint64Field) : undefined,
      seq: has(raw, "seq") ? toSafeNumber(raw.seq as Uint64Field) : undefined,
      metrics: ((raw.metrics as Proto[] | undefined) ?? []).map(readMetric),
    };
  } catch (err) {
    if (err instanceof ValueError || err instanceof PayloadError) throw new PayloadError(err.message);
    throw err;
  }
}

function aliasKey(v: Uint64Field): string {
  if (typeof v === "number") return String(v);
  return v && v.high === 0 ? String(v.low >>> 0) : toBigUint(v).toString();
}

function msOf(v: Uint64Field): number {
  const n = toSafeNumber(v);
  if (!Number.isFinite(n) || n > 8.64e15) throw new PayloadError(`timestamp ${toBigUint(v)} is out of range`);
  return n;
}

function readMetric(m: Proto): SparkplugMetric {
  const datatype = typeof m.datatype === "number" ? m.datatype : 0;
  const isNull = m.isNull === true;
  const properties = m.properties ? readPropertySet(m.properties as Proto) : {};
  let value: unknown = null;
  let unrepresentable = false;
  if (!isNull && datatype !== 0) {
    if (datatype === TEMPLATE) value = readTemplate((m.templateValue as Proto | undefined) ?? {});
    else if (datatype === DATASET) value = readDataSet((m.datasetValue as Proto | undefined) ?? {});
    else if (datatype === 20) value = readPropertySet((m.propertysetValue as Proto | undefined) ?? {});
    else if (datatype === 21) value = readPropertySetList((m.propertysetsValue as Proto | undefined) ?? {});
    else if (DATATYPE_NAMES[datatype] !== undefined) {
      value = readScalar(datatype, m as ValueFields);
      unrepresentable = value === null;
    }
  }
  return {
    name: has(m, "name") ? (m.name as string) : undefined,
    alias: has(m, "alias") ? aliasKey(m.alias as Uint64Field) : undefined,
    datatype,
    timestampMs: has(m, "timestamp") ? msOf(m.timestamp as Uint64Field) : undefined,
    isHistorical: m.isHistorical === true,
    isTransient: m.isTransient === true,
    isNull,
    properties,
    value,
    unrepresentable,
  };
}

function readTemplate(t: Proto): TemplateValue {
  const parameters: Record<string, unknown> = {};
  for (const p of (t.parameters as Proto[] | undefined) ?? []) {
    if (typeof p.name === "string" && typeof p.type === "number" && DATATYPE_NAMES[p.type] !== undefined)
      parameters[p.name] = readScalar(p.type, p as ValueFields);
  }
  return {
    templateRef: has(t, "templateRef") ? (t.templateRef as string) : undefined,
    isDefinition: t.isDefinition === true,
    version: has(t, "version") ? (t.version as string) : undefined,
    metrics: ((t.metrics as Proto[] | undefined) ?? []).map(readMetric),
    parameters,
  };
}

function readDataSet(d: Proto): { columns: string[]; types: string[]; rows: unknown[][] } {
  const types = ((d.types as number[] | undefined) ?? []).map((t) => t);
  const columns = (d.columns as string[] | undefined) ?? [];
  if (columns.length !== types.length) throw new PayloadError("DataSet with unequal column and type counts");
  const rows = ((d.rows as Proto[] | undefined) ?? []).map((row) => {
    const elements = (row.elements as Proto[] | undefined) ?? [];
    if (elements.length !== types.length) throw new PayloadError("DataSet row of the wrong width");
    return elements.map((e, i) => readScalar(types[i], e as ValueFields));
  });
  return { columns, types: types.map((t) => DATATYPE_NAMES[t] ?? String(t)), rows };
}

function readPropertySet(s: Proto): Record<string, unknown> {
  const keys = (s.keys as string[] | undefined) ?? [];
  const values = (s.values as Proto[] | undefined) ?? [];
  const out: Record<string, unknown> = {};
  keys.forEach((key, i) => {
    const v = values[i];
    if (!v || key === "__proto__" || key === "constructor" || key === "prototype") return;
    const type = typeof v.type === "number" ? v.type : 0;
    if (v.isNull === true) out[key] = null;
    else if (type === 20) out[key] = readPropertySet((v.propertysetValue as Proto | undefined) ?? {});
    else if (type === 21) out[key] = readPropertySetList((v.propertysetsValue as Proto | undefined) ?? {});
    else if (DATATYPE_NAMES[type] !== undefined && type !== TEMPLATE && type !== DATASET)
      out[key] = readScalar(type, v as ValueFields);
  });
  return out;
}

function readPropertySetList(l: Proto): Record<string, unknown>[] {
  return ((l.propertyset as Proto[] | undefined) ?? []).map(readPropertySet);
}

/** One metric of a command (NCMD/DCMD). `value` as `writeValue` gave it. */
export interface CommandMetric {
  name?: string;
  alias?: string;
  datatype: number;
  value: unknown;
}

/** Encodes an NCMD/DCMD payload with the library's encoder. */
export function encodeCommand(metrics: readonly CommandMetric[], timestampMs: number): Uint8Array {
  return encoder.encodePayload({
    timestamp: timestampMs,
    metrics: metrics.map((m) => {
      const metric = {
        type: DATATYPE_NAMES[m.datatype],
        value: m.value,
        timestamp: timestampMs,
        ...(m.name !== undefined ? { name: m.name } : {}),
        ...(m.alias !== undefined ? { alias: m.alias } : {}),
      };
      return metric as unknown as UMetric;
    }),
  });
}
