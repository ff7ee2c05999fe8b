import {
  DataType,
  type DataValue,
  ExpandedNodeId,
  LocalizedText,
  NodeId,
  QualifiedName,
  StatusCode,
  Variant,
  VariantArrayType,
} from "node-opcua-client";
import type { Quality } from "../../domain/model.js";
import type { SourcePoint } from "../connector.js";

/**
 * How OPC UA values become i3X values and back (the mapping table in docs/connectors.md). Values follow
 * OPC UA's own JSON encoding where it has one: 64-bit integers as decimal strings (exact beyond 2^53),
 * non-finite floats as "NaN"/"Infinity"/"-Infinity", byte strings as base64.
 */

/** The i3X quality of an OPC UA status: its severity bits decide, the sub-code is kept in metrics only. */
export function qualityOf(status: StatusCode): "Good" | "Uncertain" | "Bad" {
  const severity = status.value >>> 30;
  if (severity === 0) return "Good";
  if (severity === 1) return "Uncertain";
  return "Bad";
}

/** Microseconds since the epoch: the source timestamp, else the server's, else `receivedUs`. */
export function timestampUs(dataValue: DataValue, receivedUs: number): number {
  const at = dataValue.sourceTimestamp ?? dataValue.serverTimestamp;
  const ms = at?.getTime();
  // OPC UA's "no timestamp" is the DateTime minimum (1601), which node-opcua decodes to a date before 1970.
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? ms * 1000 : receivedUs;
}

/** One notification or read result as the point the framework stores. */
export function pointOf(elementId: string, dataValue: DataValue, receivedUs: number): SourcePoint {
  const tsUs = timestampUs(dataValue, receivedUs);
  const base = qualityOf(dataValue.statusCode);
  if (base === "Bad") return { elementId, value: null, quality: "Bad", tsUs };
  const value = jsonOfVariant(dataValue.value);
  let quality: Quality = base;
  if (value === null && base === "Good") quality = "GoodNoData";
  // Uncertain means "a value that may be stale or imprecise"; with no value there is nothing usable.
  if (value === null && base === "Uncertain") quality = "Bad";
  return { elementId, value, quality, tsUs };
}

const INT64_TYPES = new Set([DataType.Int64, DataType.UInt64]);

/** A Variant as a JSON value (null for an empty variant). */
export function jsonOfVariant(variant: Variant | null | undefined): unknown {
  if (!variant || variant.dataType === DataType.Null) return null;
  const { dataType, arrayType, value } = variant;
  if (arrayType === VariantArrayType.Scalar) return jsonOfScalar(dataType, value);
  if (value === null || value === undefined) return null;
  const flat = Array.from(value as ArrayLike<unknown>, (v) => jsonOfScalar(dataType, v));
  if (arrayType === VariantArrayType.Matrix && variant.dimensions && variant.dimensions.length > 1) {
    return reshape(flat, variant.dimensions);
  }
  return flat;
}

function reshape(flat: unknown[], dimensions: number[]): unknown {
  if (dimensions.length <= 1) return flat;
  const [first, ...rest] = dimensions;
  const size = flat.length / (first ?? 1);
  const out: unknown[] = [];
  for (let i = 0; i < (first ?? 0); i++) out.push(reshape(flat.slice(i * size, (i + 1) * size), rest));
  return out;
}

function jsonOfScalar(dataType: DataType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (dataType) {
    case DataType.Boolean:
    case DataType.SByte:
    case DataType.Byte:
    case DataType.Int16:
    case DataType.UInt16:
    case DataType.Int32:
    case DataType.UInt32:
      return value;
    case DataType.Int64:
    case DataType.UInt64:
      return int64Text(value, dataType === DataType.Int64);
    case DataType.Float:
    case DataType.Double: {
      const n = value as number;
      if (Number.isFinite(n)) return n;
      return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
    }
    case DataType.String:
    case DataType.XmlElement:
      return String(value);
    case DataType.DateTime:
      return value instanceof Date && Number.isFinite(value.getTime()) ? value.toISOString() : null;
    case DataType.Guid:
      return String(value);
    case DataType.ByteString:
      return Buffer.isBuffer(value) ? value.toString("base64") : null;
    case DataType.NodeId:
    case DataType.ExpandedNodeId:
      return value instanceof NodeId || value instanceof ExpandedNodeId ? value.toString() : String(value);
    case DataType.StatusCode:
      return value instanceof StatusCode ? value.name : String(value);
    case DataType.QualifiedName:
      return value instanceof QualifiedName ? value.name : String(value);
    case DataType.LocalizedText:
      return value instanceof LocalizedText ? (value.text ?? null) : String(value);
    case DataType.Variant:
      return jsonOfVariant(value as Variant);
    default:
      // Structures (ExtensionObject), DataValue, DiagnosticInfo: their own JSON form, made plain.
      return plainJson(value);
  }
}

function plainJson(value: unknown): unknown {
  const seen = new WeakSet<object>();
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (v && typeof v === "object") {
      if (seen.has(v)) return undefined;
      seen.add(v);
    }
    return v;
  });
  return text === undefined ? null : JSON.parse(text);
}

/** Node-opcua holds a 64-bit integer as `[high, low]` 32-bit halves; anything else is taken as a number. */
function int64Text(value: unknown, signed: boolean): string {
  let big: bigint;
  if (Array.isArray(value) && value.length === 2) {
    big = (BigInt((value[0] as number) >>> 0) << 32n) + BigInt((value[1] as number) >>> 0);
  } else if (typeof value === "bigint") {
    big = value;
  } else {
    big = BigInt(Math.trunc(Number(value)));
  }
  return (signed ? BigInt.asIntN(64, big) : BigInt.asUintN(64, big)).toString();
}

/** Why a JSON value cannot be written to a node, as a per-item 400. */
export class ConversionError extends Error {}

const INTEGER_RANGES: Partial<Record<DataType, [bigint, bigint]>> = {
  [DataType.SByte]: [-128n, 127n],
  [DataType.Byte]: [0n, 255n],
  [DataType.Int16]: [-32768n, 32767n],
  [DataType.UInt16]: [0n, 65535n],
  [DataType.Int32]: [-2147483648n, 2147483647n],
  [DataType.UInt32]: [0n, 4294967295n],
  [DataType.Int64]: [-(2n ** 63n), 2n ** 63n - 1n],
  [DataType.UInt64]: [0n, 2n ** 64n - 1n],
};
const FLOAT_MAX = 3.4028234663852886e38;

/**
 * A JSON value as the Variant a node of built-in type `dataType` takes (`isArray` when its ValueRank says
 * array). Throws ConversionError naming what does not fit.
 */
export function variantOf(value: unknown, dataType: DataType, isArray: boolean): Variant {
  if (isArray) {
    if (!Array.isArray(value)) throw new ConversionError(`expects an array of ${DataType[dataType]}`);
    const items = value.map((v, i) => {
      try {
        return scalarOf(v, dataType);
      } catch (err) {
        throw new ConversionError(`[${i}]: ${(err as Error).message}`);
      }
    });
    return new Variant({ dataType, arrayType: VariantArrayType.Array, value: items });
  }
  return new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: scalarOf(value, dataType) });
}

function scalarOf(value: unknown, dataType: DataType): unknown {
  const name = DataType[dataType] ?? `DataType ${dataType}`;
  const range = INTEGER_RANGES[dataType];
  if (range) {
    let big: bigint;
    if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
    else if (typeof value === "string" && /^-?\d{1,20}$/.test(value)) big = BigInt(value);
    else throw new ConversionError(`${JSON.stringify(value)} is not an integer of ${name}`);
    if (big < range[0] || big > range[1]) {
      throw new ConversionError(`${big} is outside ${name} (${range[0]} to ${range[1]})`);
    }
    if (!INT64_TYPES.has(dataType)) return Number(big);
    const u = BigInt.asUintN(64, big);
    return [Number(u >> 32n), Number(u & 0xffffffffn)];
  }
  switch (dataType) {
    case DataType.Boolean:
      if (typeof value !== "boolean") throw new ConversionError(`${JSON.stringify(value)} is not a Boolean`);
      return value;
    case DataType.Float:
    case DataType.Double: {
      const n = floatOf(value);
      if (n === undefined) throw new ConversionError(`${JSON.stringify(value)} is not a number`);
      if (dataType === DataType.Float && Number.isFinite(n) && Math.abs(n) > FLOAT_MAX) {
        throw new ConversionError(`${n} is outside Float`);
      }
      return n;
    }
    case DataType.String:
    case DataType.XmlElement:
      if (typeof value !== "string") throw new ConversionError(`${JSON.stringify(value)} is not a String`);
      return value;
    case DataType.LocalizedText:
      if (typeof value !== "string") throw new ConversionError(`${JSON.stringify(value)} is not a text`);
      return new LocalizedText({ text: value });
    case DataType.DateTime: {
      const ms = typeof value === "string" ? Date.parse(value) : Number.NaN;
      if (!Number.isFinite(ms)) throw new ConversionError(`${JSON.stringify(value)} is not an RFC 3339 time`);
      return new Date(ms);
    }
    case DataType.ByteString:
      if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        throw new ConversionError(`${JSON.stringify(value)} is not base64`);
      }
      return Buffer.from(value, "base64");
    default:
      throw new ConversionError(`writing ${name} values is not supported`);
  }
}

function floatOf(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (value === "NaN") return Number.NaN;
  if (value === "Infinity") return Number.POSITIVE_INFINITY;
  if (value === "-Infinity") return Number.NEGATIVE_INFINITY;
  return undefined;
}

const NON_FINITE = { enum: ["NaN", "Infinity", "-Infinity"] };

/** The JSON Schema of one value of a built-in DataType. */
export function schemaOfDataType(dataType: DataType): Record<string, unknown> {
  const range = INTEGER_RANGES[dataType];
  if (range && INT64_TYPES.has(dataType)) {
    return { type: "string", pattern: dataType === DataType.Int64 ? "^-?[0-9]+$" : "^[0-9]+$" };
  }
  if (range) return { type: "integer", minimum: Number(range[0]), maximum: Number(range[1]) };
  switch (dataType) {
    case DataType.Boolean:
      return { type: "boolean" };
    case DataType.Float:
    case DataType.Double:
      return { anyOf: [{ type: "number" }, NON_FINITE] };
    case DataType.DateTime:
      return { type: "string", format: "date-time" };
    case DataType.ByteString:
      return { type: "string", contentEncoding: "base64" };
    case DataType.String:
    case DataType.XmlElement:
    case DataType.LocalizedText:
    case DataType.QualifiedName:
    case DataType.NodeId:
    case DataType.ExpandedNodeId:
    case DataType.Guid:
    case DataType.StatusCode:
      return { type: "string" };
    case DataType.ExtensionObject:
      return { type: "object" };
    default:
      return {};
  }
}

/** The schema of a variable's value: its DataType's, or an array of it when the ValueRank says so. */
export function schemaOfVariable(dataType: DataType, isArray: boolean): Record<string, unknown> {
  const item = schemaOfDataType(dataType);
  return isArray ? { type: "array", items: item } : item;
}
