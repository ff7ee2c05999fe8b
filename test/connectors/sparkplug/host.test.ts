// biome-ignore-all lint/suspicious/noExplicitAny: decoded payloads and model documents are read by assertions
import sparkplugPayload from "sparkplug-payload";
import type { UMetric } from "sparkplug-payload/lib/sparkplugbpayload.js";
import protoRoot from "sparkplug-payload/lib/sparkplugPayloadProto.js";
import { describe, expect, it } from "vitest";
import { decodeSparkplug, encodeCommand, PayloadError } from "../../../src/connectors/sparkplug/codec.js";
import { writeValue } from "../../../src/connectors/sparkplug/datatypes.js";
import { type HostEffects, SparkplugHost } from "../../../src/connectors/sparkplug/host.js";
import { SparkplugIds } from "../../../src/connectors/sparkplug/ids.js";
import { pumpInstance } from "../../helpers/sparkplug-edge-node.js";

const sp = sparkplugPayload.get("spBv1.0");
if (!sp) throw new Error("no spBv1.0 codec");
const codec = sp;
const Payload = protoRoot.org.eclipse.tahu.protobuf.Payload;

const encode = (seq: number | undefined, metrics: Partial<UMetric>[], timestamp = 1_700_000_000_000) =>
  codec.encodePayload({ timestamp, ...(seq === undefined ? {} : { seq }), metrics: metrics as UMetric[] });

const ids = new SparkplugIds("");
const T = 1_800_000_000_000;

function newHost(overrides: Partial<ConstructorParameters<typeof SparkplugHost>[0]> = {}) {
  return new SparkplugHost({
    ids,
    reorderTimeoutMs: 1000,
    onDeath: "bad",
    removeDropped: false,
    maxEdgeNodes: 100,
    maxMetricsPerEdgeNode: 1000,
    maxReorderMessages: 8,
    maxReorderBytes: 1 << 20,
    ...overrides,
  });
}

const nbirth = (bdSeq: number, extra: Partial<UMetric>[] = []) =>
  encode(0, [
    { name: "bdSeq", type: "UInt64", value: bdSeq },
    { name: "Node Control/Rebirth", type: "Boolean", value: false, alias: 1 },
    { name: "Uptime", type: "Int64", value: 5, alias: 2 },
    ...extra,
  ]);

const pointOf = (fx: HostEffects, id: string) => fx.points.filter((p) => p.elementId === id).at(-1);

describe("element ids", () => {
  it("are readable and give their parts back", () => {
    expect(ids.edgeNode("Plant 1", "Edge:1")).toBe("spBv1.0/Plant 1/Edge:1");
    const device = ids.device("G", "E", "D");
    expect(ids.metric(device, ["Inputs/Temp"])).toBe("spBv1.0/G/E/D#Inputs/Temp");
    expect(ids.folder(device, ["Inputs"])).toBe("spBv1.0/G/E/D#Inputs/");
    expect(ids.metric(ids.metric(device, ["Pump1"]), ["Speed"])).toBe("spBv1.0/G/E/D#Pump1#Speed");
    const awkward = ["a#b%c", " lead", "trail ", "x//y", "/abs", "tab\there", "end/"];
    for (const name of awkward) {
      const id = ids.metric(device, [name]);
      expect(id.trim()).toBe(id);
      expect([...id].every((c) => c.charCodeAt(0) >= 0x20)).toBe(true);
      expect(ids.parse(id)?.metric).toEqual({
        group: "G",
        edgeNode: "E",
        device: "D",
        path: [name],
        folder: false,
      });
    }
    expect(ids.parse("spBv1.0/G/E/D#Pump1#Speed")?.metric?.path).toEqual(["Pump1", "Speed"]);
    expect(ids.parse("spBv1.0/G/E#Inputs/")?.metric).toMatchObject({ path: ["Inputs"], folder: true });
    expect(ids.parse("spBv1.0/G")).toEqual({ group: "G" });
    expect(new SparkplugIds("siteA:").edgeNode("G", "E")).toBe("siteA:spBv1.0/G/E");
    // Types never equal an object id.
    expect(ids.deviceType("G", "E", "D")).toBe("spBv1.0:Device/G/E/D");
    expect(ids.templateType("G", "E", "Pump")).toBe("spBv1.0:Template/G/E#Pump");
  });
});

describe("decoding", () => {
  it("keeps 64-bit integers exact and reads every integer width with its sign", () => {
    const decoded = decodeSparkplug(
      encode(1, [
        { name: "u64max", type: "UInt64", value: "18446744073709551615" as any },
        { name: "u64safe", type: "UInt64", value: 9007199254740991 },
        { name: "u64above", type: "UInt64", value: "9007199254740993" as any },
        { name: "i64neg", type: "Int64", value: "-9223372036854775808" as any },
        { name: "i64small", type: "Int64", value: -5 },
        { name: "u32", type: "UInt32", value: 4_000_000_000 },
        { name: "i8", type: "Int8", value: -1 },
        { name: "i16", type: "Int16", value: -300 },
        { name: "u16", type: "UInt16", value: 65535 },
        { name: "dt", type: "DateTime", value: 1_700_000_000_123 },
        { name: "nan", type: "Double", value: Number.NaN },
        { name: "none", type: "Float", value: null },
        { name: "f32", type: "Float", value: 14.96 },
        { name: "f32big", type: "Float", value: 16777217 },
      ]),
    );
    const v = Object.fromEntries(decoded.metrics.map((m) => [m.name, m.value]));
    expect(v).toEqual({
      u64max: "18446744073709551615",
      u64safe: 9007199254740991,
      u64above: "9007199254740993",
      i64neg: "-9223372036854775808",
      i64small: -5,
      u32: 4_000_000_000,
      i8: -1,
      i16: -300,
      u16: 65535,
      dt: "2023-11-14T22:13:20.123Z",
      nan: null,
      none: null,
      // Floats as the shortest decimal of the same 32-bit float, not the double's 14.960000038146973.
      f32: 14.96,
      f32big: 16777216,
    });
    expect(decoded.metrics.find((m) => m.name === "nan")?.unrepresentable).toBe(true);
    expect(decoded.metrics.find((m) => m.name === "none")?.isNull).toBe(true);
    expect(decoded.seq).toBe(1);
  });

  it("reads DataSets with integer columns and packed arrays", () => {
    const int16s = Buffer.alloc(6);
    for (const [i, n] of [-1, 2, 300].entries()) int16s.writeInt16LE(n, i * 2);
    const bytes = Payload.encode(
      Payload.create({
        seq: 2,
        metrics: [
          {
            name: "table",
            datatype: 16,
            datasetValue: {
              numOfColumns: 2,
              columns: ["n", "s"],
              types: [3, 12],
              rows: [{ elements: [{ intValue: -7 >>> 0 }, { stringValue: "x" }] }],
            },
          },
          { name: "arr", datatype: 23, bytesValue: int16s },
          { name: "bools", datatype: 32, bytesValue: Buffer.from([3, 0, 0, 0, 0b1010_0000]) },
          { name: "strs", datatype: 33, bytesValue: Buffer.from("ab\0c\0") },
        ],
      }),
    ).finish();
    const v = Object.fromEntries(decodeSparkplug(bytes).metrics.map((m) => [m.name, m.value]));
    expect(v.table).toEqual({ columns: ["n", "s"], types: ["Int32", "String"], rows: [[-7, "x"]] });
    expect(v.arr).toEqual([-1, 2, 300]);
    expect(v.bools).toEqual([true, false, true]);
    expect(v.strs).toEqual(["ab", "c"]);
  });

  it("refuses bytes that are not a payload with a PayloadError", () => {
    expect(() => decodeSparkplug(Buffer.from([0xff, 0xff, 0xff]))).toThrow(PayloadError);
    expect(() => decodeSparkplug(Buffer.from('{"not":"protobuf"}'))).toThrow(PayloadError);
  });

  it("encodes commands the library decodes back, 64-bit values exact", () => {
    const bytes = encodeCommand(
      [
        { alias: "7", datatype: 8, value: "18446744073709551615" },
        { name: "Node Control/Rebirth", datatype: 11, value: true },
      ],
      T,
    );
    const back = codec.decodePayload(bytes);
    expect(String(back.metrics?.[0].value)).toBe("18446744073709551615");
    expect(String(back.metrics?.[0].alias)).toBe("7");
    expect(back.metrics?.[1]).toMatchObject({ name: "Node Control/Rebirth", value: true, type: "Boolean" });
  });
});

describe("written values against datatypes", () => {
  it("accepts what fits and says why not otherwise", () => {
    expect(writeValue(1, 127)).toEqual({ value: 127 });
    expect(writeValue(1, 128)).toBeInstanceOf(Error);
    expect(writeValue(3, 1.5)).toBeInstanceOf(Error);
    expect(writeValue(8, "18446744073709551615")).toEqual({ value: "18446744073709551615" });
    expect(writeValue(8, "18446744073709551616")).toBeInstanceOf(Error);
    expect(writeValue(8, -1)).toBeInstanceOf(Error);
    expect(writeValue(4, "-9223372036854775808")).toEqual({ value: "-9223372036854775808" });
    expect(writeValue(11, "true")).toBeInstanceOf(Error);
    expect(writeValue(12, 5)).toBeInstanceOf(Error);
    expect(writeValue(10, 2.5)).toEqual({ value: 2.5 });
    expect(writeValue(9, 1e39)).toBeInstanceOf(Error);
    expect(writeValue(13, "2030-01-01T00:00:00Z")).toEqual({
      value: String(Date.parse("2030-01-01T00:00:00Z")),
    });
    expect(writeValue(16, {})).toBeInstanceOf(Error);
  });
});

describe("model from births", () => {
  it("makes group, node, device, folders and metrics with types and HasComponent edges", () => {
    const host = newHost();
    const fx = host.handle(
      "spBv1.0/G/NBIRTH/E",
      nbirth(0, [
        {
          name: "Inputs/Temp",
          type: "Float",
          value: 21.5,
          alias: 3,
          properties: {
            engUnit: { type: "String", value: "°C" },
            description: { type: "String", value: "Inlet temperature" },
          },
        } as any,
      ]),
      T,
    );
    expect(fx.invalid).toBeUndefined();
    const model = fx.model as any;
    const objects = new Map(model.objects.map((o: any) => [o.elementId, o]));
    expect(objects.get("spBv1.0/G")).toMatchObject({ parentId: null, typeElementId: "spBv1.0:Group" });
    expect(objects.get("spBv1.0/G/E")).toMatchObject({
      parentId: "spBv1.0/G",
      typeElementId: "spBv1.0:EdgeNode/G/E",
    });
    expect(objects.get("spBv1.0/G/E#Inputs/")).toMatchObject({
      parentId: "spBv1.0/G/E",
      typeElementId: "spBv1.0:Folder",
    });
    expect(objects.get("spBv1.0/G/E#Inputs/Temp")).toMatchObject({
      displayName: "Temp",
      parentId: "spBv1.0/G/E#Inputs/",
      typeElementId: "spBv1.0:Float",
      description: "Inlet temperature",
      system: { source: { group: "G", edgeNode: "E", metric: "Inputs/Temp" } },
    });
    expect(model.relationships).toContainEqual({
      sourceId: "spBv1.0/G/E#Inputs/",
      relationshipType: "HasComponent",
      targetId: "spBv1.0/G/E#Inputs/Temp",
    });
    const nodeType = model.objectTypes.find((t: any) => t.elementId === "spBv1.0:EdgeNode/G/E");
    expect(nodeType.schema.properties.Inputs.properties.Temp).toMatchObject({
      type: "number",
      description: "Inlet temperature",
      "x-engUnit": "°C",
    });
    expect(model.objectTypes.find((t: any) => t.elementId === "spBv1.0:Int64").schema.type).toEqual([
      "integer",
      "string",
    ]);
    expect(model.namespaces.map((n: any) => n.uri)).toContain("https://cesmii.org/i3x");
    expect(pointOf(fx, "spBv1.0/G/E#Inputs/Temp")).toEqual({
      elementId: "spBv1.0/G/E#Inputs/Temp",
      value: 21.5,
      quality: "Good",
      tsUs: 1_700_000_000_000_000,
    });
    expect(host.edgeNodeCounts()).toEqual({ online: 1, offline: 0 });
  });

  it("turns Template definitions into types and instances into objects with members", () => {
    const host = newHost();
    const definition = {
      name: "Pump",
      type: "Template",
      value: {
        isDefinition: true,
        version: "1.0",
        metrics: [
          { name: "Speed", type: "Int32", value: 0 },
          { name: "Running", type: "Boolean", value: false },
        ],
        parameters: [{ name: "MaxSpeed", type: "Int32", value: 3000 }],
      },
    };
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0, [definition as any]), T);
    const fx = host.handle("spBv1.0/G/DBIRTH/E/D", encode(1, [pumpInstance("Pump1", 10)]), T);
    const model = fx.model as any;
    const pump = model.objects.find((o: any) => o.elementId === "spBv1.0/G/E/D#Pump1");
    expect(pump.typeElementId).toBe("spBv1.0:Template/G/E#Pump");
    expect(model.relationships).toContainEqual({
      sourceId: "spBv1.0/G/E/D#Pump1",
      relationshipType: "HasComponent",
      targetId: "spBv1.0/G/E/D#Pump1#Speed",
    });
    expect(pointOf(fx, "spBv1.0/G/E/D#Pump1#Speed")?.value).toBe(1450);

    // Data for the instance by its alias reaches the members by name.
    const data = host.handle(
      "spBv1.0/G/DDATA/E/D",
      encode(2, [
        {
          alias: 10,
          type: "Template",
          value: { isDefinition: false, metrics: [{ name: "Speed", type: "Int32", value: 1500 }] },
        } as any,
      ]),
      T,
    );
    expect(data.points).toEqual([
      { elementId: "spBv1.0/G/E/D#Pump1#Speed", value: 1500, quality: "Good", tsUs: 1_700_000_000_000_000 },
    ]);
  });

  it("the type of a Template definition is in the NBIRTH's model change", () => {
    const host = newHost();
    const fx = host.handle(
      "spBv1.0/G/NBIRTH/E",
      nbirth(0, [
        {
          name: "Motor",
          type: "Template",
          value: { isDefinition: true, metrics: [{ name: "Amps", type: "Float", value: 0 }] },
        } as any,
      ]),
      T,
    );
    const type = (fx.model as any).objectTypes.find((t: any) => t.elementId === "spBv1.0:Template/G/E#Motor");
    expect(type.schema.properties.Amps.type).toBe("number");
    expect((fx.model as any).objects.some((o: any) => o.elementId === "spBv1.0/G/E#Motor")).toBe(false);
  });

  it("a rebirth with a changed metric set adds objects and turns the missing ones Bad", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0, [{ name: "Old", type: "Int32", value: 1, alias: 3 }]), T);
    const fx = host.handle(
      "spBv1.0/G/NBIRTH/E",
      nbirth(1, [{ name: "New", type: "Int32", value: 2, alias: 3 }]),
      T,
    );
    expect((fx.model as any).objects.some((o: any) => o.elementId === "spBv1.0/G/E#New")).toBe(true);
    expect(pointOf(fx, "spBv1.0/G/E#Old")).toMatchObject({ value: null, quality: "Bad" });
    // Alias 3 now means New.
    const data = host.handle("spBv1.0/G/NDATA/E", encode(1, [{ alias: 3, type: "Int32", value: 9 }]), T);
    expect(data.points.map((p) => p.elementId)).toEqual(["spBv1.0/G/E#New"]);
  });
});

describe("births with removeDropped", () => {
  const pump = (members: string[]) =>
    ({
      name: "Pump1",
      type: "Template",
      alias: 10,
      value: {
        templateRef: "Pump",
        isDefinition: false,
        metrics: members.map((name) => ({ name, type: "Int32", value: 1 })),
      },
    }) as any;
  const full = () => [
    pump(["Speed", "Running"]),
    { name: "A/B/C", type: "Int32", value: 1, alias: 11 },
    { name: "A/X", type: "Int32", value: 1, alias: 12 },
    { name: "Keep", type: "Int32", value: 1, alias: 13 },
  ];
  const dev = "spBv1.0/G/E/D";
  const definition = {
    name: "Pump",
    type: "Template",
    value: { isDefinition: true, metrics: [{ name: "Speed", type: "Int32", value: 0 }] },
  } as any;

  it("lists what a birth dropped for removal: metrics, template members, emptied folders; never Bad", () => {
    const host = newHost({ removeDropped: true });
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0, [definition]), T);
    host.handle("spBv1.0/G/DBIRTH/E/D", encode(1, full()), T);
    const fx = host.handle(
      "spBv1.0/G/DBIRTH/E/D",
      encode(2, [pump(["Speed"]), { name: "A/X", type: "Int32", value: 2, alias: 12 }]),
      T,
    );
    expect(fx.removed.sort()).toEqual([`${dev}#A/B/`, `${dev}#A/B/C`, `${dev}#Keep`, `${dev}#Pump1#Running`]);
    // Stored instead only if the removal fails.
    expect(fx.removedAsBad.map((p) => [p.elementId, p.quality]).sort()).toEqual([
      [`${dev}#A/B/C`, "Bad"],
      [`${dev}#Keep`, "Bad"],
    ]);
    expect(fx.points.filter((p) => p.quality === "Bad")).toEqual([]);
  });

  it("a birth later in the same batch takes back what an earlier one dropped", () => {
    const host = newHost({ removeDropped: true });
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0, [definition]), T);
    host.handle("spBv1.0/G/DBIRTH/E/D", encode(1, full()), T);
    // Out of order: the full birth waits for the reduced one, then both apply in one go.
    expect(host.handle("spBv1.0/G/DBIRTH/E/D", encode(3, full()), T).removed).toEqual([]);
    const fx = host.handle("spBv1.0/G/DBIRTH/E/D", encode(2, [{ name: "Keep", type: "Int32", value: 2 }]), T);
    expect(fx.model).toBeDefined();
    expect(fx.removed).toEqual([]);
    expect(fx.removedAsBad).toEqual([]);
  });
});

describe("data", () => {
  it("maps is_null, the Quality property, is_historical and metric timestamps", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0, [{ name: "X", type: "Double", value: 1, alias: 3 }]), T);
    const fx = host.handle(
      "spBv1.0/G/NDATA/E",
      encode(1, [
        { alias: 3, type: "Double", value: null },
        { alias: 3, type: "Double", value: 2, properties: { Quality: { type: "Int32", value: 500 } } } as any,
        { alias: 3, type: "Double", value: 3, properties: { Quality: { type: "Int32", value: 0 } } } as any,
        { alias: 3, type: "Double", value: 4, isHistorical: true, timestamp: 1_600_000_000_000 },
      ]),
      T,
    );
    expect(
      fx.points.map(({ value, quality, tsUs, historical }) => ({ value, quality, tsUs, historical })),
    ).toEqual([
      { value: null, quality: "GoodNoData", tsUs: 1_700_000_000_000_000, historical: undefined },
      { value: 2, quality: "Uncertain", tsUs: 1_700_000_000_000_000, historical: undefined },
      { value: null, quality: "Bad", tsUs: 1_700_000_000_000_000, historical: undefined },
      { value: 4, quality: "Good", tsUs: 1_600_000_000_000_000, historical: true },
    ]);
  });

  it("asks for a rebirth on data before birth and on an unknown alias", () => {
    const host = newHost();
    const before = host.handle("spBv1.0/G/NDATA/E", encode(4, [{ alias: 3, type: "Int32", value: 1 }]), T);
    expect(before.rebirths).toEqual([{ group: "G", edgeNode: "E", reason: "data_before_birth" }]);
    expect(before.points).toEqual([]);
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    const unknown = host.handle(
      "spBv1.0/G/NDATA/E",
      encode(1, [
        { alias: 99, type: "Int32", value: 1 },
        { alias: 2, type: "Int64", value: 6 },
      ]),
      T,
    );
    expect(unknown.rebirths).toEqual([{ group: "G", edgeNode: "E", reason: "unknown_alias" }]);
    expect(unknown.points.map((p) => p.value)).toEqual([6]);
    const device = host.handle("spBv1.0/G/DDATA/E/D", encode(2, [{ alias: 2, type: "Int64", value: 1 }]), T);
    expect(device.rebirths[0].reason).toBe("data_before_birth");
  });
});

describe("sequence numbers", () => {
  it("waits out a reorder and applies messages in order when the missing one arrives in time", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    const early = host.handle("spBv1.0/G/NDATA/E", encode(2, [{ alias: 2, type: "Int64", value: 2 }]), T);
    expect(early.points).toEqual([]);
    expect(host.nextDeadline()).toBe(T + 1000);
    const late = host.handle("spBv1.0/G/NDATA/E", encode(1, [{ alias: 2, type: "Int64", value: 1 }]), T + 10);
    expect(late.points.map((p) => p.value)).toEqual([1, 2]);
    expect(late.rebirths).toEqual([]);
    expect(host.nextDeadline()).toBeUndefined();
  });

  it("counts a gap that outlasts the timeout, asks for a rebirth and keeps the data", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    host.handle("spBv1.0/G/NDATA/E", encode(3, [{ alias: 2, type: "Int64", value: 3 }]), T);
    expect(host.expire(T + 999).sequenceGaps).toBe(0);
    const fx = host.expire(T + 1000);
    expect(fx.sequenceGaps).toBe(1);
    expect(fx.rebirths).toEqual([{ group: "G", edgeNode: "E", reason: "sequence_gap" }]);
    expect(fx.points.map((p) => p.value)).toEqual([3]);
    // The sequence continues from what arrived.
    expect(
      host.handle("spBv1.0/G/NDATA/E", encode(4, [{ alias: 2, type: "Int64", value: 4 }]), T).points,
    ).toHaveLength(1);
  });

  it("wraps from 255 to 0", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    for (let s = 1; s <= 256 + 3; s++) {
      const fx = host.handle(
        "spBv1.0/G/NDATA/E",
        encode(s % 256, [{ alias: 2, type: "Int64", value: s }]),
        T,
      );
      expect(fx.points).toHaveLength(1);
    }
    expect(host.nextDeadline()).toBeUndefined();
  });

  it("gives up at once when more messages are held than allowed", () => {
    const host = newHost({ maxReorderMessages: 2 });
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    let gaps = 0;
    for (const s of [5, 6, 7])
      gaps += host.handle(
        "spBv1.0/G/NDATA/E",
        encode(s, [{ alias: 2, type: "Int64", value: s }]),
        T,
      ).sequenceGaps;
    expect(gaps).toBe(1);
  });
});

describe("deaths", () => {
  const birthAll = (host: SparkplugHost) => {
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(7, [{ name: "N", type: "Int32", value: 1, alias: 3 }]), T);
    host.handle("spBv1.0/G/DBIRTH/E/D", encode(1, [{ name: "M", type: "Int32", value: 2, alias: 4 }]), T);
  };

  it("an NDEATH with the current bdSeq marks node and device metrics Bad at the receive time", () => {
    const host = newHost();
    birthAll(host);
    const stale = host.handle(
      "spBv1.0/G/NDEATH/E",
      encode(undefined, [{ name: "bdSeq", type: "UInt64", value: 6 }]),
      T + 5,
    );
    expect(stale.points).toEqual([]);
    expect(host.edgeNodeCounts().online).toBe(1);
    const fx = host.handle(
      "spBv1.0/G/NDEATH/E",
      encode(undefined, [{ name: "bdSeq", type: "UInt64", value: 7 }]),
      T + 5,
    );
    expect(pointOf(fx, "spBv1.0/G/E#N")).toEqual({
      elementId: "spBv1.0/G/E#N",
      value: null,
      quality: "Bad",
      tsUs: (T + 5) * 1000,
    });
    expect(pointOf(fx, "spBv1.0/G/E/D#M")).toMatchObject({
      value: null,
      quality: "Bad",
      tsUs: (T + 5) * 1000,
    });
    expect(host.edgeNodeCounts()).toEqual({ online: 0, offline: 1 });
    expect(host.writeTarget({ group: "G", edgeNode: "E", metric: "N" })).toMatchObject({ status: 503 });
  });

  it("holds the last value as Uncertain when so configured; DDEATH uses the payload's timestamp", () => {
    const host = newHost({ onDeath: "uncertain" });
    birthAll(host);
    const fx = host.handle("spBv1.0/G/DDEATH/E/D", encode(2, [], 1_750_000_000_000), T);
    expect(fx.points).toEqual([
      { elementId: "spBv1.0/G/E/D#M", value: 2, quality: "Uncertain", tsUs: 1_750_000_000_000_000 },
    ]);
    expect(host.writeTarget({ group: "G", edgeNode: "E", device: "D", metric: "M" })).toMatchObject({
      status: 503,
    });
  });
});

describe("write targets", () => {
  it("resolve the current alias and datatype of a metric", () => {
    const host = newHost();
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    host.handle(
      "spBv1.0/G/DBIRTH/E/D",
      encode(1, [
        { name: "SP", type: "UInt64", value: 1, alias: 9 },
        { name: "Named", type: "String", value: "a" },
      ]),
      T,
    );
    expect(host.writeTarget({ group: "G", edgeNode: "E", device: "D", metric: "SP" })).toEqual({
      topic: "spBv1.0/G/DCMD/E/D",
      datatype: 8,
      alias: "9",
      name: "SP",
    });
    expect(host.writeTarget({ group: "G", edgeNode: "E", device: "D", metric: "Named" })).toMatchObject({
      alias: undefined,
      datatype: 12,
    });
    expect(host.writeTarget({ group: "G", edgeNode: "E", device: "D", metric: "Nope" })).toMatchObject({
      status: 404,
    });
  });

  it("of a template member name the instance and the path down to the member", () => {
    const host = newHost();
    host.handle(
      "spBv1.0/G/NBIRTH/E",
      nbirth(0, [
        {
          name: "Motor",
          type: "Template",
          value: { isDefinition: true, metrics: [{ name: "Amps", type: "Float", value: 0 }] },
        } as any,
        {
          name: "Pump",
          type: "Template",
          value: {
            isDefinition: true,
            metrics: [
              {
                name: "Motor",
                type: "Template",
                value: { templateRef: "Motor", isDefinition: false, metrics: [] },
              },
            ],
          },
        } as any,
        {
          name: "P1",
          alias: 7,
          type: "Template",
          value: {
            templateRef: "Pump",
            isDefinition: false,
            metrics: [
              {
                name: "Motor",
                type: "Template",
                value: {
                  templateRef: "Motor",
                  isDefinition: false,
                  metrics: [{ name: "Amps", type: "Float", value: 3 }],
                },
              },
            ],
          },
        } as any,
      ]),
      T,
    );
    expect(host.writeTarget({ group: "G", edgeNode: "E", metric: "P1", members: ["Motor", "Amps"] })).toEqual(
      {
        topic: "spBv1.0/G/NCMD/E",
        datatype: 9,
        alias: "7",
        name: "P1",
        templateRef: "Pump",
        members: [
          { name: "Motor", templateRef: "Motor" },
          { name: "Amps", templateRef: undefined },
        ],
      },
    );
    expect(host.writeTarget({ group: "G", edgeNode: "E", metric: "P1", members: ["Nope"] })).toMatchObject({
      status: 404,
    });
  });
});

describe("bad input", () => {
  it("a metric whose id would be too long is left out of its birth; the rest is applied", () => {
    const host = newHost();
    const long = "x".repeat(600);
    const fx = host.handle(
      "spBv1.0/G/NBIRTH/E",
      nbirth(0, [
        { name: long, type: "Int32", value: 1, alias: 3 },
        { name: "Short", type: "Int32", value: 2, alias: 4 },
        { name: "Named twice", type: "Int32", value: 3 },
        { name: "Named twice", type: "Int32", value: 4 },
      ]),
      T,
    );
    expect(fx.skipped).toEqual([long]);
    const objects = (fx.model as any).objects.map((o: any) => o.elementId);
    expect(objects).toContain("spBv1.0/G/E#Short");
    expect(objects.some((id: string) => id.length > 512)).toBe(false);
    const edges = (fx.model as any).relationships.map((r: any) => `${r.sourceId}>${r.targetId}`);
    expect(new Set(edges).size).toBe(edges.length);
    expect(host.handle(`spBv1.0/G/NBIRTH/${"e".repeat(600)}`, nbirth(0), T).invalid).toMatch(
      /longer than 512/,
    );
  });

  it("devices count toward the bound of an edge node's metrics, even without metrics", () => {
    const host = newHost({ maxMetricsPerEdgeNode: 10 });
    host.handle("spBv1.0/G/NBIRTH/E", nbirth(0), T);
    const outcomes = Array.from(
      { length: 12 },
      (_, i) => host.handle(`spBv1.0/G/DBIRTH/E/d${i}`, encode(i + 1, []), T).invalid,
    );
    // Node: bdSeq, Node Control/Rebirth, Uptime; then one per device.
    expect(outcomes.filter((o) => o === undefined)).toHaveLength(7);
    expect(outcomes.at(-1)).toMatch(/beyond 10 metrics/);
  });

  it("is reported, never thrown", () => {
    const host = newHost();
    expect(host.handle("spBv1.0/G/NBIRTH/E", Buffer.from([0xff, 0xff, 0xff]), T).invalid).toMatch(
      /not a Sparkplug B payload/,
    );
    expect(host.handle("spBv1.0/G/FOO/E", nbirth(0), T).invalid).toBeDefined();
    expect(host.handle("spBv1.0/G/DDATA/E", nbirth(0), T).invalid).toMatch(/without a device/);
    expect(host.handle("spBv1.0/STATE/host", Buffer.from("{}"), T).ignored).toBe(true);
    expect(host.handle("spBv1.0/G/NCMD/E", Buffer.from([1]), T).ignored).toBe(true);
  });
});
