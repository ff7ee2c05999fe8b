import type { JsonSchema } from "../../domain/model.js";

/**
 * Sparkplug B 3.0 datatypes: their codes, the JSON Schema each maps to in i3X object types, how a value
 * of each is read from the decoded protobuf fields, and how a written JSON value is checked against one.
 */

export const DATATYPE_NAMES: Record<number, string> = {
  1: "Int8",
  2: "Int16",
  3: "Int32",
  4: "Int64",
  5: "UInt8",
  6: "UInt16",
  7: "UInt32",
  8: "UInt64",
  9: "Float",
  10: "Double",
  11: "Boolean",
  12: "String",
  13: "DateTime",
  14: "Text",
  15: "UUID",
  16: "DataSet",
  17: "Bytes",
  18: "File",
  19: "Template",
  20: "PropertySet",
  21: "PropertySetList",
  22: "Int8Array",
  23: "Int16Array",
  24: "Int32Array",
  25: "Int64Array",
  26: "UInt8Array",
  27: "UInt16Array",
  28: "UInt32Array",
  29: "UInt64Array",
  30: "FloatArray",
  31: "DoubleArray",
  32: "BooleanArray",
  33: "StringArray",
  34: "DateTimeArray",
};

export const TEMPLATE = 19;
export const DATASET = 16;

/** Long as protobufjs decodes uint64 fields: two 32-bit halves. */
export interface LongBits {
  low: number;
  high: number;
}

export type Uint64Field = number | LongBits | null | undefined;

function isLongBits(v: unknown): v is LongBits {
  return typeof v === "object" && v !== null && typeof (v as LongBits).low === "number";
}

/** An unsigned 64-bit field as a BigInt, exactly. */
export function toBigUint(v: Uint64Field): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === "number") return BigInt.asUintN(64, BigInt(Math.trunc(v)));
  return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
}

/** A uint64 field that holds a small count (seq, bdSeq, alias, timestamps) as a number. */
export function toSafeNumber(v: Uint64Field): number {
  const big = toBigUint(v);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : Number.NaN;
}

/** A 64-bit integer as JSON: a number within ±(2^53 − 1), a decimal string beyond (kept exact). */
function int64Json(big: bigint): number | string {
  return big <= BigInt(Number.MAX_SAFE_INTEGER) && big >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(big)
    : big.toString();
}

const integer = (minimum: number, maximum: number, name: string): JsonSchema => ({
  type: "integer",
  minimum,
  maximum,
  description: `Sparkplug ${name}`,
});

const SCALAR_SCHEMAS: Record<number, JsonSchema> = {
  1: integer(-128, 127, "Int8"),
  2: integer(-32768, 32767, "Int16"),
  3: integer(-2147483648, 2147483647, "Int32"),
  4: {
    type: ["integer", "string"],
    pattern: "^-?(0|[1-9][0-9]{0,18})$",
    description:
      "Sparkplug Int64: a number within ±(2^53 − 1), a decimal string beyond that, so that no digit is lost",
  },
  5: integer(0, 255, "UInt8"),
  6: integer(0, 65535, "UInt16"),
  7: integer(0, 4294967295, "UInt32"),
  8: {
    type: ["integer", "string"],
    minimum: 0,
    pattern: "^(0|[1-9][0-9]{0,19})$",
    description:
      "Sparkplug UInt64: a number up to 2^53 − 1, a decimal string above that, so that no digit is lost",
  },
  9: { type: "number", description: "Sparkplug Float (32-bit)" },
  10: { type: "number", description: "Sparkplug Double" },
  11: { type: "boolean", description: "Sparkplug Boolean" },
  12: { type: "string", description: "Sparkplug String" },
  13: { type: "string", format: "date-time", description: "Sparkplug DateTime (ms UTC), as RFC 3339" },
  14: { type: "string", description: "Sparkplug Text" },
  15: { type: "string", description: "Sparkplug UUID" },
  16: {
    type: "object",
    description: "Sparkplug DataSet: column names, their datatypes and the rows",
    properties: {
      columns: { type: "array", items: { type: "string" } },
      types: { type: "array", items: { type: "string" } },
      rows: { type: "array", items: { type: "array" } },
    },
    required: ["columns", "types", "rows"],
  },
  17: { type: "string", contentEncoding: "base64", description: "Sparkplug Bytes, base64" },
  18: { type: "string", contentEncoding: "base64", description: "Sparkplug File, base64" },
  20: { type: "object", description: "Sparkplug PropertySet" },
  21: { type: "array", items: { type: "object" }, description: "Sparkplug PropertySetList" },
};

/** The JSON Schema of one datatype (arrays: their element schema under `items`). */
export function datatypeSchema(datatype: number): JsonSchema {
  const scalar = SCALAR_SCHEMAS[datatype];
  if (scalar) return scalar;
  const element = ARRAY_ELEMENT[datatype];
  if (element !== undefined) {
    const { description: _d, ...items } = SCALAR_SCHEMAS[element];
    return { type: "array", items, description: `Sparkplug ${DATATYPE_NAMES[datatype]}` };
  }
  return { type: "object", description: "Sparkplug metric of an unknown datatype" };
}

/** Array datatypes (3.0: packed little-endian in `bytes_value`) and the scalar datatype of their elements. */
const ARRAY_ELEMENT: Record<number, number> = {
  22: 1,
  23: 2,
  24: 3,
  25: 4,
  26: 5,
  27: 6,
  28: 7,
  29: 8,
  30: 9,
  31: 10,
  32: 11,
  33: 12,
  34: 13,
};

/** The value fields of a decoded Metric, PropertyValue, Parameter or DataSetValue. */
export interface ValueFields {
  intValue?: number | null;
  longValue?: Uint64Field;
  floatValue?: number | null;
  doubleValue?: number | null;
  booleanValue?: boolean | null;
  stringValue?: string | null;
  bytesValue?: Uint8Array | null;
}

/** Why a value cannot be read; the message counts as invalid. */
export class ValueError extends Error {}

function signedFromInt(fields: ValueFields, bits: number): number {
  const raw =
    fields.intValue ?? (isLongBits(fields.longValue) ? fields.longValue.low : (fields.longValue ?? 0));
  const shift = 32 - bits;
  return shift === 0 ? raw | 0 : ((raw << shift) >> shift) | 0;
}

function unsignedFromInt(fields: ValueFields, bits: number): number {
  if (fields.intValue !== undefined && fields.intValue !== null) {
    const v = fields.intValue >>> 0;
    return bits === 32 ? v : v & ((1 << bits) - 1);
  }
  return Number(toBigUint(fields.longValue) & ((1n << BigInt(bits)) - 1n));
}

function finite(v: number | null | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/**
 * The JSON value of a scalar or array datatype. `null` stands for a value JSON cannot carry (NaN, ±∞):
 * the caller stores it as `Bad`.
 */
export function readScalar(datatype: number, fields: ValueFields): unknown {
  switch (datatype) {
    case 1:
      return signedFromInt(fields, 8);
    case 2:
      return signedFromInt(fields, 16);
    case 3:
      return signedFromInt(fields, 32);
    case 5:
      return unsignedFromInt(fields, 8);
    case 6:
      return unsignedFromInt(fields, 16);
    case 7:
      return unsignedFromInt(fields, 32);
    case 4:
      return int64Json(BigInt.asIntN(64, toBigUint(fields.longValue ?? fields.intValue)));
    case 8:
      return int64Json(toBigUint(fields.longValue ?? fields.intValue));
    case 9:
      return float32Json(fields.floatValue);
    case 10:
      return finite(fields.doubleValue);
    case 11:
      return fields.booleanValue === true;
    case 12:
    case 14:
    case 15:
      return fields.stringValue ?? "";
    case 13:
      return dateTimeJson(toBigUint(fields.longValue));
    case 17:
    case 18:
      return Buffer.from(fields.bytesValue ?? new Uint8Array()).toString("base64");
    default:
      if (ARRAY_ELEMENT[datatype] !== undefined)
        return readArray(datatype, fields.bytesValue ?? new Uint8Array());
      throw new ValueError(`datatype ${datatype} is not a scalar datatype`);
  }
}

/**
 * A 32-bit float as the shortest decimal that reads back as the same float (2.1, not 2.0999999046325684):
 * the digits the edge node meant, and nothing lost, since the float is all there was.
 */
function float32Json(v: number | null | undefined): number | null {
  const f = finite(v);
  if (f === null || f === 0) return f;
  for (let digits = 1; digits < 9; digits++) {
    const shorter = Number(f.toPrecision(digits));
    if (Math.fround(shorter) === f) return shorter;
  }
  return f;
}

function dateTimeJson(ms: bigint): string {
  const n = Number(ms);
  if (!Number.isSafeInteger(n) || n > 8.64e15) throw new ValueError(`DateTime ${ms} is out of range`);
  return new Date(n).toISOString();
}

/**
 * Sparkplug 3.0 arrays travel packed in `bytes_value` (little-endian numbers; booleans as a 4-byte count
 * then bits, most significant first; strings NUL-terminated). sparkplug-payload 1.0 does not decode them.
 */
function readArray(datatype: number, bytes: Uint8Array): unknown[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fixed = (size: number, read: (offset: number) => unknown): unknown[] => {
    if (buf.length % size !== 0) throw new ValueError(`${DATATYPE_NAMES[datatype]}: ${buf.length} bytes`);
    const out: unknown[] = new Array(buf.length / size);
    for (let i = 0; i < out.length; i++) out[i] = read(i * size);
    return out;
  };
  switch (datatype) {
    case 22:
      return fixed(1, (o) => buf.readInt8(o));
    case 23:
      return fixed(2, (o) => buf.readInt16LE(o));
    case 24:
      return fixed(4, (o) => buf.readInt32LE(o));
    case 25:
      return fixed(8, (o) => int64Json(buf.readBigInt64LE(o)));
    case 26:
      return fixed(1, (o) => buf.readUInt8(o));
    case 27:
      return fixed(2, (o) => buf.readUInt16LE(o));
    case 28:
      return fixed(4, (o) => buf.readUInt32LE(o));
    case 29:
      return fixed(8, (o) => int64Json(buf.readBigUInt64LE(o)));
    case 30:
      return fixed(4, (o) => float32Json(buf.readFloatLE(o)));
    case 31:
      return fixed(8, (o) => finite(buf.readDoubleLE(o)));
    case 34:
      return fixed(8, (o) => dateTimeJson(buf.readBigUInt64LE(o)));
    case 32: {
      if (buf.length < 4) throw new ValueError("BooleanArray without its count");
      const count = buf.readUInt32LE(0);
      if (Math.ceil(count / 8) > buf.length - 4) throw new ValueError("BooleanArray shorter than its count");
      const out: boolean[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = (buf[4 + (i >> 3)] & (0x80 >> (i & 7))) !== 0;
      return out;
    }
    case 33: {
      const text = buf.toString("utf8");
      if (text.length === 0) return [];
      if (!text.endsWith("\0")) throw new ValueError("StringArray not NUL-terminated");
      return text.slice(0, -1).split("\0");
    }
    default:
      throw new ValueError(`datatype ${datatype} is not an array datatype`);
  }
}

/**
 * Checks a written JSON value against a metric's datatype and gives what `sparkplug-payload`'s encoder
 * takes (64-bit integers as decimal strings, which protobufjs converts exactly); an Error says why not.
 * Only scalar datatypes are writable.
 */
export function writeValue(datatype: number, value: unknown): { value: unknown } | Error {
  const name = DATATYPE_NAMES[datatype] ?? `datatype ${datatype}`;
  const bad = (why: string) => new Error(`${name} metric: ${why}`);
  const inRange = (min: number, max: number) => {
    if (typeof value !== "number" || !Number.isInteger(value))
      return bad(`${JSON.stringify(value)} is not an integer`);
    if (value < min || value > max) return bad(`${value} is outside ${min}..${max}`);
    return { value };
  };
  switch (datatype) {
    case 1:
      return inRange(-128, 127);
    case 2:
      return inRange(-32768, 32767);
    case 3:
      return inRange(-2147483648, 2147483647);
    case 5:
      return inRange(0, 255);
    case 6:
      return inRange(0, 65535);
    case 7:
      return inRange(0, 4294967295);
    case 4:
    case 8: {
      let big: bigint;
      if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
      else if (typeof value === "string" && /^-?(0|[1-9][0-9]*)$/.test(value)) big = BigInt(value);
      else return bad(`${JSON.stringify(value)} is not an integer (a safe number or a decimal string)`);
      const [min, max] = datatype === 4 ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      if (big < min || big > max) return bad(`${big} is outside ${min}..${max}`);
      return { value: big.toString() };
    }
    case 9:
    case 10:
      if (typeof value !== "number" || !Number.isFinite(value))
        return bad(`${JSON.stringify(value)} is not a number`);
      if (datatype === 9 && Math.abs(value) > 3.4028234663852886e38)
        return bad(`${value} does not fit a Float`);
      return { value };
    case 11:
      return typeof value === "boolean" ? { value } : bad(`${JSON.stringify(value)} is not a boolean`);
    case 12:
    case 14:
      return typeof value === "string" ? { value } : bad(`${JSON.stringify(value)} is not a string`);
    case 15:
      return typeof value === "string" &&
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)
        ? { value }
        : bad(`${JSON.stringify(value)} is not a UUID`);
    case 13: {
      const ms =
        typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : Number.NaN;
      return Number.isFinite(ms)
        ? { value: String(ms) }
        : bad(`${JSON.stringify(value)} is not an RFC 3339 date-time`);
    }
    default:
      return bad("only scalar metrics can be written");
  }
}
