import { describe, expect, it } from "vitest";
import { reconnectDelayMs } from "../../../src/connectors/mqtt/connection.js";
import {
  ancestorsOf,
  escapeIdPart,
  memberId,
  unescapeIdPart,
} from "../../../src/connectors/mqtt/element-ids.js";
import { compileRules, type Mapped, MqttMapper, RuleError } from "../../../src/connectors/mqtt/mapper.js";
import type { MqttRuleOptions } from "../../../src/connectors/mqtt/options.js";
import { compilePayloadPath } from "../../../src/connectors/mqtt/payload-path.js";
import { inferSchema, widenSchema } from "../../../src/connectors/mqtt/schema-inference.js";
import { compileTemplate, compileTopicPattern } from "../../../src/connectors/mqtt/topic-pattern.js";

const RECEIVED_US = 1_765_000_000_000_000;

function mapperFor(rules: MqttRuleOptions[], declared: string[] = []): MqttMapper {
  return new MqttMapper(
    compileRules({ url: "mqtt://127.0.0.1", rules }),
    {
      connector: "uns",
      namespaceUri: "urn:test",
      folderTypeId: "uns#TopicLevel",
      maxElements: 1000,
      lookUpUnknown: false,
    },
    new Set(declared),
  );
}

function mapped(result: Mapped) {
  if (result.outcome !== "mapped") throw new Error(`expected mapped, got ${JSON.stringify(result)}`);
  result.commit();
  return result;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe("element ids", () => {
  it("keep topics readable and escape only what would make them ambiguous", () => {
    expect(escapeIdPart("pump-101")).toBe("pump-101");
    expect(escapeIdPart("Pumpe Nr. 1 (Süd)")).toBe("Pumpe Nr. 1 (Süd)");
    expect(escapeIdPart("50%/a#b")).toBe("50%25%2Fa%23b");
    expect(escapeIdPart(" edge\t")).toBe("%20edge%09");
    expect(memberId("a/b", "x/y")).toBe("a/b#x%2Fy");
  });

  it("reverse exactly, whatever the text", () => {
    for (const text of ["plain", "50%", "%2F", "a/b#c", "  both  ", "line\nbreak", "ünï©ødé", "%%"])
      expect(unescapeIdPart(escapeIdPart(text))).toBe(text);
  });

  it("list ancestors by their / levels", () => {
    expect(ancestorsOf("a/b/c")).toEqual(["a", "a/b"]);
    expect(ancestorsOf("root")).toEqual([]);
  });
});

describe("topic patterns and templates", () => {
  it("capture named levels and subscribe with wildcards", () => {
    const p = compileTopicPattern("{site}/{area}/+/{tag#}");
    expect(p.filter).toBe("+/+/+/#");
    expect(p.match("riverside/pumping/pump-101/flow/raw")).toEqual(
      new Map([
        ["site", ["riverside"]],
        ["area", ["pumping"]],
        ["tag", ["flow", "raw"]],
      ]),
    );
    expect(p.match("riverside/pumping")).toBeNull();
    expect(p.match("$SYS/broker/load/x")).toBeNull();
    expect(compileTopicPattern("a/{b}").match("a/b/c")).toBeNull();
    expect(compileTopicPattern("a/#").match("a")).toEqual(new Map());
  });

  it("refuse malformed patterns and templates with a reason", () => {
    expect(() => compileTopicPattern("a/#/b")).toThrow(/last level/);
    expect(() => compileTopicPattern("a/x{b}")).toThrow(/mixes/);
    expect(() => compileTopicPattern("{topic}/x")).toThrow(/built-in/);
    expect(() => compileTemplate("{site}.{nope}", ["site"])).toThrow(/unknown placeholder \{nope\}/);
    expect(() => compileTemplate("{site", ["site"])).toThrow(/unmatched/);
  });

  it("escape values in ids but not in display names", () => {
    const t = compileTemplate("{site}/{tag}", ["site", "tag"]);
    const values = {
      connector: "c",
      topic: "x",
      captures: new Map([
        ["site", ["a/b"]],
        ["tag", ["50%"]],
      ]),
    };
    expect(t.id(values)).toBe("a%2Fb/50%25");
    expect(t.text(values)).toBe("a/b/50%");
  });

  it("name the rule and field of a mistake", () => {
    expect(() =>
      compileRules({ url: "mqtt://x", rules: [{ topic: "a" }, { topic: "{a}", elementId: "{b}" }] }),
    ).toThrow(RuleError);
    expect(() =>
      compileRules({ url: "mqtt://x", rules: [{ topic: "a" }, { topic: "{a}", elementId: "{b}" }] }),
    ).toThrow(/^rules\[1\]\.elementId: unknown placeholder \{b\}/);
  });
});

describe("payload paths", () => {
  it("find members, array items and quoted names", () => {
    const doc = { value: 1, data: { "a.b": [{ v: 2 }] }, "with space": 3 };
    expect(compilePayloadPath("$").get(doc)).toBe(doc);
    expect(compilePayloadPath("value").get(doc)).toBe(1);
    expect(compilePayloadPath("$.value").get(doc)).toBe(1);
    expect(compilePayloadPath('data["a.b"][0].v').get(doc)).toBe(2);
    expect(compilePayloadPath("['with space']").get(doc)).toBe(3);
    expect(compilePayloadPath("data.missing.v").get(doc)).toBeUndefined();
    expect(compilePayloadPath("value[0]").get(doc)).toBeUndefined();
    expect(compilePayloadPath("constructor").get({})).toBeUndefined();
  });

  it("refuse malformed paths", () => {
    for (const bad of ["a..b", "a.", "a[x]", 'a["b]', "a]b[0"])
      expect(() => compilePayloadPath(bad)).toThrow();
  });
});

describe("reconnect delays", () => {
  it("double their ceiling from minMs up to maxMs and are drawn below it", () => {
    const limits = { minMs: 100, maxMs: 3000 };
    const top = (failures: number) => reconnectDelayMs(failures, limits, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6, 50].map(top)).toEqual([200, 400, 800, 1600, 3000, 3000, 3000]);
    expect(reconnectDelayMs(4, limits, () => 0)).toBe(100);
    expect(reconnectDelayMs(4, limits, () => 0.5)).toBe(800);
    const drawn = new Set(Array.from({ length: 50 }, () => reconnectDelayMs(5, limits)));
    expect(drawn.size).toBeGreaterThan(10);
    for (const d of drawn) expect(d).toBeGreaterThanOrEqual(100);
    for (const d of drawn) expect(d).toBeLessThanOrEqual(3000);
  });
});

describe("type inference", () => {
  it("infers from the first value and widens, never narrows", () => {
    let s = inferSchema(3);
    expect(s).toEqual({ type: "number" });
    expect(widenSchema(s, 2.5)).toBe(s);
    expect(widenSchema(s, 7)).toBe(s);
    s = widenSchema(s, "n/a");
    expect(s).toEqual({ type: ["number", "string"] });
    s = widenSchema(s, null);
    expect(s).toEqual({ type: ["null", "number", "string"] });
    s = widenSchema(s, { a: 1 });
    expect(s).toEqual({
      anyOf: [
        { type: "null" },
        { type: "number" },
        { type: "string" },
        { type: "object", properties: { a: { type: "number" } } },
      ],
    });
    s = widenSchema(s, { a: "x", b: [true] });
    expect(s.anyOf).toContainEqual({
      type: "object",
      properties: { a: { type: ["number", "string"] }, b: { type: "array", items: { type: "boolean" } } },
    });
    expect(widenSchema({}, 5)).toEqual({});
  });
});

describe("the mapper", () => {
  it("maps a UNS topic to an element under folders made from its levels", () => {
    const m = mapperFor([{ topic: "{site}/{area}/{equipment}/{tag}", value: "value", timestamp: "ts" }]);
    const r = mapped(
      m.map(
        "riverside/pumping/pump-101/flow",
        json({ value: 42.5, ts: "2026-12-08T01:00:00.123Z" }),
        RECEIVED_US,
      ),
    );
    expect(r.points).toEqual([
      {
        elementId: "riverside/pumping/pump-101/flow",
        value: 42.5,
        quality: "Good",
        tsUs: Date.parse("2026-12-08T01:00:00.123Z") * 1000,
      },
    ]);
    expect(r.model?.objects?.map((o) => [o.elementId, o.parentId, o.typeElementId, o.displayName])).toEqual([
      ["riverside", null, "uns#TopicLevel", "riverside"],
      ["riverside/pumping", "riverside", "uns#TopicLevel", "pumping"],
      ["riverside/pumping/pump-101", "riverside/pumping", "uns#TopicLevel", "pump-101"],
      ["riverside/pumping/pump-101/flow", "riverside/pumping/pump-101", "uns:flow", "flow"],
    ]);
    expect(r.model?.objectTypes).toEqual([
      {
        elementId: "uns:flow",
        displayName: "uns:flow",
        namespaceUri: "urn:test",
        schema: { type: "number" },
      },
    ]);
    // The second message needs no model change, a sibling only its own element.
    expect(
      mapped(m.map("riverside/pumping/pump-101/flow", json({ value: 43 }), RECEIVED_US)).model,
    ).toBeNull();
    const sibling = mapped(m.map("riverside/pumping/pump-101/speed", json({ value: 1480 }), RECEIVED_US));
    expect(sibling.model?.objects?.map((o) => o.elementId)).toEqual(["riverside/pumping/pump-101/speed"]);
    expect(sibling.points[0]?.tsUs).toBe(RECEIVED_US);
  });

  it("widens an inferred type when a later value needs it", () => {
    const m = mapperFor([{ topic: "{a}/{tag}" }]);
    mapped(m.map("x/t", json(1), RECEIVED_US));
    const r = mapped(m.map("y/t", json("high"), RECEIVED_US));
    expect(r.model?.objectTypes?.[0]?.schema).toEqual({ type: ["number", "string"] });
  });

  it("uses templates and a declared type without inferring it", () => {
    const m = mapperFor(
      [
        {
          topic: "{site}/{area}/{equipment}/{tag}",
          elementId: "{equipment}/{tag}",
          parentId: "{site}/{equipment}",
          displayName: "{equipment} {tag}",
          typeElementId: "temperature-type",
        },
      ],
      ["temperature-type"],
    );
    const r = mapped(m.map("riverside/pumping/pump-101/bearing", json(61.2), RECEIVED_US));
    expect(r.model?.objectTypes).toBeUndefined();
    expect(r.model?.objects?.at(-1)).toEqual({
      elementId: "pump-101/bearing",
      displayName: "pump-101 bearing",
      typeElementId: "temperature-type",
      parentId: "riverside/pump-101",
      system: { source: "riverside/pumping/pump-101/bearing" },
    });
  });

  it("turns a declared composition into HasComponent members with their own values", () => {
    const m = mapperFor([{ topic: "{site}/{equipment}", composition: true, value: "data", quality: "q" }]);
    const r = mapped(
      m.map(
        "riverside/pump-101",
        json({ q: "uncertain", data: { flow: 1.5, "a/b": true, motor: { rpm: 1480 } } }),
        RECEIVED_US,
      ),
    );
    expect(r.points.map((p) => [p.elementId, p.value, p.quality])).toEqual([
      ["riverside/pump-101#flow", 1.5, "Uncertain"],
      ["riverside/pump-101#a%2Fb", true, "Uncertain"],
      ["riverside/pump-101#motor#rpm", 1480, "Uncertain"],
    ]);
    expect(r.model?.relationships).toEqual([
      {
        sourceId: "riverside/pump-101",
        relationshipType: "HasComponent",
        targetId: "riverside/pump-101#flow",
      },
      {
        sourceId: "riverside/pump-101",
        relationshipType: "HasComponent",
        targetId: "riverside/pump-101#a%2Fb",
      },
      {
        sourceId: "riverside/pump-101",
        relationshipType: "HasComponent",
        targetId: "riverside/pump-101#motor",
      },
      {
        sourceId: "riverside/pump-101#motor",
        relationshipType: "HasComponent",
        targetId: "riverside/pump-101#motor#rpm",
      },
    ]);
    expect(m.map("riverside/pump-101", json({ data: [1, 2] }), RECEIVED_US)).toEqual({
      outcome: "invalid",
      reason: "composition value is not a JSON object",
    });
  });

  it("counts what it cannot map by reason and writes nothing of it", () => {
    const m = mapperFor([
      { topic: "plant/{tag}", value: "v", timestamp: "t", quality: "q", qualityMap: { "192": "Good" } },
    ]);
    const reason = (payload: Buffer) => {
      const r = m.map("plant/x", payload, RECEIVED_US);
      return r.outcome === "invalid" ? r.reason : r.outcome;
    };
    expect(m.map("other/x", json({ v: 1 }), RECEIVED_US)).toEqual({ outcome: "unmatched" });
    expect(reason(Buffer.from([0xff, 0xfe, 0x00]))).toBe("payload is not UTF-8 text");
    expect(reason(Buffer.from("{not json"))).toBe("payload is not JSON");
    expect(reason(json({ w: 1 }))).toBe("no value at v");
    expect(reason(json({ v: 1, t: "yesterday" }))).toBe("timestamp at t is not a valid time");
    expect(reason(json({ v: 1, t: -5 }))).toBe("timestamp at t is not a valid time");
    expect(reason(json({ v: 1, q: "meh" }))).toBe('quality "meh" is not known');
    expect(reason(json({ v: null, q: 192 }))).toBe("value is null with quality Good");
    expect(reason(Buffer.alloc(0))).toBe("ignored");
    const ok = mapped(m.map("plant/x", json({ v: 5, q: 192, t: 1_765_000_000_123 }), RECEIVED_US));
    expect(ok.points[0]).toMatchObject({ quality: "Good", tsUs: 1_765_000_000_123_000 });
    const bad = mapped(m.map("plant/x", json({ v: 5, q: "BAD" }), RECEIVED_US));
    expect(bad.points[0]).toMatchObject({ value: null, quality: "Bad" });
  });

  it("bounds the elements it creates", () => {
    const m = new MqttMapper(
      compileRules({ url: "mqtt://x", rules: [{ topic: "{tag}" }] }),
      { connector: "c", namespaceUri: "urn:t", folderTypeId: "f", maxElements: 2, lookUpUnknown: false },
      new Set(),
    );
    mapped(m.map("a", json(1), RECEIVED_US));
    mapped(m.map("b", json(1), RECEIVED_US));
    expect(m.map("c", json(1), RECEIVED_US)).toEqual({
      outcome: "invalid",
      reason: "element limit (2) reached",
    });
    expect(mapped(m.map("a", json(2), RECEIVED_US)).points).toHaveLength(1);
  });

  it("asks what the store holds before creating, and widens the stored schema", () => {
    const m = new MqttMapper(
      compileRules({ url: "mqtt://x", rules: [{ topic: "{area}/{tag}" }] }),
      { connector: "c", namespaceUri: "urn:t", folderTypeId: "f", maxElements: 10, lookUpUnknown: true },
      new Set(),
    );
    const first = m.map("area/t", json(1), RECEIVED_US);
    expect(first).toEqual({ outcome: "lookup", objectIds: ["area", "area/t"], typeIds: ["c:t"] });
    if (first.outcome !== "lookup") return;
    m.learn(
      [{ elementId: "area", displayName: "Area", typeElementId: "area-type", parentId: null }],
      [{ elementId: "c:t", displayName: "t", namespaceUri: "urn:t", schema: { type: "string" } }],
      first,
    );
    const r = mapped(m.map("area/t", json(1), RECEIVED_US));
    // The stored "area" object stays as it is; the stored type widens from string.
    expect(r.model?.objects?.map((o) => o.elementId)).toEqual(["area/t"]);
    expect(r.model?.objectTypes?.[0]?.schema).toEqual({ type: ["number", "string"] });
  });
});
