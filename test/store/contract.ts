import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Vqt } from "../../src/domain/model.js";
import { jsonText } from "../../src/domain/raw-json.js";
import { formatTimestampUs, parseTimestampUs } from "../../src/domain/time.js";
import type { ModelDocument } from "../../src/model/format.js";
import type { HistoryRange, PointWrite, Store } from "../../src/store/store.js";

export interface StoreHandle {
  store: Store;
  /** Closes and reopens the same database (persistence checks). */
  reopen(): Promise<Store>;
  cleanup(): Promise<void>;
}

const NS = "urn:test:types";

/** A small plant: a site with a pump (composition) and a tank, a graph edge between them. */
export function contractModel(): ModelDocument {
  return {
    namespaces: [
      { uri: "https://cesmii.org/i3x", displayName: "i3X" },
      { uri: NS, displayName: "Test types" },
    ],
    relationshipTypes: [
      rel("HasParent", "HasChildren"),
      rel("HasChildren", "HasParent"),
      rel("HasComponent", "ComponentOf"),
      rel("ComponentOf", "HasComponent"),
      rel("SuppliesTo", "SuppliedBy", NS),
      rel("SuppliedBy", "SuppliesTo", NS),
    ],
    objectTypes: [
      { elementId: "site-type", displayName: "Site", namespaceUri: NS, schema: { type: "object" } },
      {
        elementId: "pump-type",
        displayName: "Pump",
        namespaceUri: NS,
        version: "1.0.0",
        schema: { type: "object", properties: { speed: { type: "number" } } },
      },
      { elementId: "temp-type", displayName: "Temperature", namespaceUri: NS, schema: { type: "number" } },
      {
        elementId: "tank-type",
        displayName: "Tank",
        namespaceUri: "https://cesmii.org/i3x",
        schema: { type: "object" },
        related: { relationshipType: "InheritsFrom", types: ["site-type"] },
      },
    ],
    objects: [
      { elementId: "site", displayName: "Site", typeElementId: "site-type" },
      { elementId: "pump", displayName: "Pump", typeElementId: "pump-type", parentId: "site" },
      {
        elementId: "pump-temp",
        displayName: "Pump temperature",
        typeElementId: "temp-type",
        parentId: "pump",
        description: "bearing",
      },
      {
        elementId: "tank",
        displayName: "Tank",
        typeElementId: "tank-type",
        parentId: "site",
        isExtended: true,
        system: { nodeId: "ns=1;i=5" },
        schemaExtensions: { serial: { type: "string" } },
      },
    ],
    relationships: [
      { sourceId: "pump", relationshipType: "HasComponent", targetId: "pump-temp" },
      { sourceId: "pump", relationshipType: "SuppliesTo", targetId: "tank" },
    ],
    values: [{ elementId: "pump-temp", value: 40.5, quality: "Good", timestamp: "2026-01-01T00:00:00Z" }],
    history: [
      { elementId: "pump-temp", value: 39, quality: "Good", timestamp: "2025-12-31T23:00:00Z" },
      { elementId: "pump-temp", value: 39.5, quality: "Uncertain", timestamp: "2025-12-31T23:30:00Z" },
    ],
  };
}

function rel(elementId: string, reverseOf: string, namespaceUri = "https://cesmii.org/i3x") {
  return { elementId, displayName: elementId, namespaceUri, relationshipId: elementId, reverseOf };
}

/** A history read as points: `getHistoryJson`'s text parsed, its count checked against it. */
export async function readHistory(
  store: Store,
  ids: readonly string[],
  range: HistoryRange,
): Promise<Map<string, { points: Vqt[]; truncated: boolean }>> {
  const out = new Map<string, { points: Vqt[]; truncated: boolean }>();
  for (const [id, slice] of await store.getHistoryJson(ids, range)) {
    const points = JSON.parse(jsonText(slice.json)) as Vqt[];
    expect(points).toHaveLength(slice.count);
    out.set(id, { points, truncated: slice.truncated });
  }
  return out;
}

function point(
  elementId: string,
  timestamp: string,
  value: unknown,
  quality: PointWrite["vqt"]["quality"] = "Good",
) {
  const tsUs = parseTimestampUs(timestamp);
  if (tsUs === null) throw new Error(`bad timestamp ${timestamp}`);
  return { elementId, tsUs, vqt: { value, quality, timestamp: formatTimestampUs(tsUs) } };
}

const ALL = { startUs: 0, endUs: Number.MAX_SAFE_INTEGER, limitPerElement: 1000 };

/** The behaviour every Store adapter must show. Run it once per adapter. */
export function describeStoreContract(name: string, makeStore: () => Promise<StoreHandle>): void {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHandle;
    let store: Store;

    beforeEach(async () => {
      h = await makeStore();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("starts empty and reports a live connection", async () => {
      expect(await store.isEmpty()).toBe(true);
      await store.ping();
      expect(store.connectionCount()).toBeGreaterThan(0);
    });

    it("imports namespaces, types and relationship types and filters them by namespace", async () => {
      await store.importModel(contractModel());
      expect(await store.isEmpty()).toBe(false);
      expect((await store.listNamespaces()).map((n) => n.uri)).toEqual(["https://cesmii.org/i3x", NS]);
      const types = await store.listObjectTypes();
      expect(types.map((t) => t.elementId).sort()).toEqual([
        "pump-type",
        "site-type",
        "tank-type",
        "temp-type",
      ]);
      expect((await store.listObjectTypes(NS)).map((t) => t.elementId).sort()).toEqual([
        "pump-type",
        "site-type",
        "temp-type",
      ]);
      const pumpType = (await store.getObjectTypes(["pump-type"])).get("pump-type");
      expect(pumpType).toMatchObject({
        displayName: "Pump",
        namespaceUri: NS,
        version: "1.0.0",
        schema: { type: "object", properties: { speed: { type: "number" } } },
      });
      expect(pumpType?.sourceTypeId).toBeTypeOf("string");
      expect((await store.getObjectTypes(["tank-type"])).get("tank-type")?.related).toEqual({
        relationshipType: "InheritsFrom",
        types: ["site-type"],
      });
      expect((await store.listRelationshipTypes(NS)).map((t) => t.elementId).sort()).toEqual([
        "SuppliedBy",
        "SuppliesTo",
      ]);
      const rt = await store.getRelationshipTypes(["HasComponent", "nope"]);
      expect(rt.size).toBe(1);
      expect(rt.get("HasComponent")?.reverseOf).toBe("ComponentOf");
    });

    it("answers batch reads with only the ids that exist", async () => {
      await store.importModel(contractModel());
      const objects = await store.getObjects(["pump", "missing", "tank", "pump"]);
      expect([...objects.keys()].sort()).toEqual(["pump", "tank"]);
      expect(objects.get("pump")).toMatchObject({
        displayName: "Pump",
        typeElementId: "pump-type",
        parentId: "site",
        isComposition: true,
        isExtended: false,
      });
      expect(objects.get("tank")).toMatchObject({
        isExtended: true,
        system: { nodeId: "ns=1;i=5" },
        schemaExtensions: { serial: { type: "string" } },
      });
      expect((await store.getObjects(["pump-temp"])).get("pump-temp")?.description).toBe("bearing");
      expect((await store.getObjects([])).size).toBe(0);
    });

    it("answers ids with a NUL character (hostile input) as absent, not with an error", async () => {
      await store.importModel(contractModel());
      const odd = "pump\u0000x";
      expect([...(await store.getObjects([odd, "pump"])).keys()]).toEqual(["pump"]);
      expect((await store.getObjectTypes([odd])).size).toBe(0);
      expect((await store.getRelationshipTypes([odd])).size).toBe(0);
      expect((await store.getCurrentValues([odd])).size).toBe(0);
      expect(await store.getRelationships([odd])).toEqual([]);
      expect(await store.getRelationships(["pump"], odd)).toEqual([]);
      expect(await store.listObjects({ typeElementId: odd })).toEqual([]);
      expect(await store.listObjectTypes(odd)).toEqual([]);
      expect(await store.listRelationshipTypes(odd)).toEqual([]);
      const hist = await readHistory(store, [odd], ALL);
      expect(hist.get(odd)?.points ?? []).toEqual([]);
    });

    it("lists objects by type and roots", async () => {
      await store.importModel(contractModel());
      expect((await store.listObjects()).map((o) => o.elementId).sort()).toEqual([
        "pump",
        "pump-temp",
        "site",
        "tank",
      ]);
      expect((await store.listObjects({ root: true })).map((o) => o.elementId)).toEqual(["site"]);
      expect((await store.listObjects({ root: false })).map((o) => o.elementId).sort()).toEqual([
        "pump",
        "pump-temp",
        "tank",
      ]);
      expect((await store.listObjects({ typeElementId: "temp-type" })).map((o) => o.elementId)).toEqual([
        "pump-temp",
      ]);
      expect(await store.listObjects({ typeElementId: "nope" })).toEqual([]);
      expect((await store.getObjects(["site"])).get("site")?.parentId).toBeNull();
    });

    it("stores every relationship in both directions, hierarchy included", async () => {
      await store.importModel(contractModel());
      const edges = await store.getRelationships(["pump", "tank", "site", "pump-temp"]);
      const has = (s: string, t: string, d: string) =>
        edges.some((e) => e.sourceId === s && e.relationshipType === t && e.targetId === d);
      expect(has("pump", "SuppliesTo", "tank")).toBe(true);
      expect(has("tank", "SuppliedBy", "pump")).toBe(true);
      expect(has("pump", "HasComponent", "pump-temp")).toBe(true);
      expect(has("pump-temp", "ComponentOf", "pump")).toBe(true);
      expect(has("pump", "HasParent", "site")).toBe(true);
      expect(has("site", "HasChildren", "pump")).toBe(true);
      expect(has("site", "HasChildren", "tank")).toBe(true);
      const comps = await store.getRelationships(["pump"], "HasComponent");
      expect(comps).toEqual([{ sourceId: "pump", relationshipType: "HasComponent", targetId: "pump-temp" }]);
      expect(await store.getRelationships(["missing"])).toEqual([]);
    });

    it("re-importing upserts: no duplicate edges, a moved object changes its hierarchy edges", async () => {
      const model = contractModel();
      await store.importModel(model);
      await store.importModel(model);
      const before = await store.getRelationships(["site"]);
      expect(before.filter((e) => e.relationshipType === "HasChildren")).toHaveLength(2);
      const moved = contractModel();
      moved.objects = [
        { elementId: "tank", displayName: "Tank 2", typeElementId: "tank-type", parentId: "pump" },
      ];
      moved.relationships = [];
      moved.values = [];
      moved.history = [];
      await store.importModel(moved);
      const tank = (await store.getObjects(["tank"])).get("tank");
      expect(tank).toMatchObject({ displayName: "Tank 2", parentId: "pump" });
      const siteEdges = await store.getRelationships(["site"], "HasChildren");
      expect(siteEdges.map((e) => e.targetId)).toEqual(["pump"]);
      expect((await store.getRelationships(["tank"], "HasParent")).map((e) => e.targetId)).toEqual(["pump"]);
    });

    it("keeps current values and history from the import", async () => {
      await store.importModel(contractModel());
      const values = await store.getCurrentValues(["pump-temp", "pump"]);
      expect([...values.keys()]).toEqual(["pump-temp"]);
      expect(values.get("pump-temp")).toEqual({
        value: 40.5,
        quality: "Good",
        timestamp: "2026-01-01T00:00:00.000Z",
      });
      const hist = (await readHistory(store, ["pump-temp"], ALL)).get("pump-temp");
      expect(hist?.points.map((p) => p.value)).toEqual([39, 39.5, 40.5]);
      expect(hist?.points[1].quality).toBe("Uncertain");
    });

    it("reads history ascending, both ends inclusive, with a per-element limit", async () => {
      await store.importModel(contractModel());
      const pts = Array.from({ length: 10 }, (_, i) => point("pump-temp", `2026-02-01T00:00:0${i}Z`, i));
      await store.writePoints(pts, "history");
      const range = {
        startUs: parseTimestampUs("2026-02-01T00:00:02Z") as number,
        endUs: parseTimestampUs("2026-02-01T00:00:05Z") as number,
        limitPerElement: 100,
      };
      const slice = (await readHistory(store, ["pump-temp"], range)).get("pump-temp");
      expect(slice?.points.map((p) => p.value)).toEqual([2, 3, 4, 5]);
      expect(slice?.truncated).toBe(false);
      const limited = (await readHistory(store, ["pump-temp"], { ...range, limitPerElement: 3 })).get(
        "pump-temp",
      );
      expect(limited?.points.map((p) => p.value)).toEqual([2, 3, 4]);
      expect(limited?.truncated).toBe(true);
      const exact = (await readHistory(store, ["pump-temp"], { ...range, limitPerElement: 4 })).get(
        "pump-temp",
      );
      expect(exact?.truncated).toBe(false);
      const empty = (await readHistory(store, ["pump"], range)).get("pump");
      expect(empty?.points ?? []).toEqual([]);
    });

    it("current-mode writes replace the value and append history; same timestamp replaces the record", async () => {
      await store.importModel(contractModel());
      await store.writePoints([point("pump", "2026-03-01T00:00:00Z", { speed: 1 })], "current");
      await store.writePoints([point("pump", "2026-03-01T00:00:00Z", { speed: 2 }, "Uncertain")], "current");
      await store.writePoints([point("pump", "2026-03-01T00:00:01Z", null, "Bad")], "current");
      expect((await store.getCurrentValues(["pump"])).get("pump")).toEqual({
        value: null,
        quality: "Bad",
        timestamp: "2026-03-01T00:00:01.000Z",
      });
      const hist = (await readHistory(store, ["pump"], ALL)).get("pump");
      expect(hist?.points).toEqual([
        { value: { speed: 2 }, quality: "Uncertain", timestamp: "2026-03-01T00:00:00.000Z" },
        { value: null, quality: "Bad", timestamp: "2026-03-01T00:00:01.000Z" },
      ]);
    });

    it("history-mode writes never move the current value backwards", async () => {
      await store.importModel(contractModel());
      expect(await store.writePoints([point("pump-temp", "2025-06-01T00:00:00Z", 1)], "history")).toEqual([]);
      expect((await store.getCurrentValues(["pump-temp"])).get("pump-temp")?.value).toBe(40.5);
      const newer = point("pump-temp", "2027-01-01T00:00:00Z", 99);
      expect(await store.writePoints([newer], "history")).toEqual([newer]);
      expect((await store.getCurrentValues(["pump-temp"])).get("pump-temp")?.value).toBe(99);
      await store.writePoints([point("pump", "2020-01-01T00:00:00Z", { speed: 3 })], "history");
      expect((await store.getCurrentValues(["pump"])).get("pump")?.value).toEqual({ speed: 3 });
    });

    it("returns the points that became current values, in batch order", async () => {
      await store.importModel(contractModel());
      const pumpLate = point("pump", "2026-09-01T00:00:02Z", { speed: 1 });
      const pumpEarly = point("pump", "2026-09-01T00:00:01Z", { speed: 2 });
      // Current mode: every point replaced the value in turn.
      expect(await store.writePoints([pumpLate, pumpEarly], "current")).toEqual([pumpLate, pumpEarly]);
      const stale = point("pump-temp", "2020-01-01T00:00:00Z", 1);
      const older = point("pump", "2026-09-01T00:00:00Z", { speed: 0 });
      const newest = point("pump", "2026-09-01T00:00:09Z", { speed: 9 });
      const newer = point("pump", "2026-09-01T00:00:05Z", { speed: 5 });
      // History mode: per element the newest point, and only when at least as new as the stored value.
      expect(await store.writePoints([stale, older, newest, newer], "history")).toEqual([newest]);
      expect((await store.getCurrentValues(["pump"])).get("pump")?.value).toEqual({ speed: 9 });
    });

    it("applies a batch as its points one after another, several per element and timestamp included", async () => {
      await store.importModel(contractModel());
      await store.writePoints(
        [
          point("pump", "2026-09-01T00:00:02Z", { speed: 1 }),
          point("pump", "2026-09-01T00:00:02Z", { speed: 3 }),
          point("pump", "2026-09-01T00:00:01Z", { speed: 2 }),
        ],
        "current",
      );
      // Current mode: the last point of the batch, even though an earlier one is newer.
      expect((await store.getCurrentValues(["pump"])).get("pump")).toEqual({
        value: { speed: 2 },
        quality: "Good",
        timestamp: "2026-09-01T00:00:01.000Z",
      });
      await store.writePoints(
        [
          point("pump-temp", "2026-09-01T00:00:05Z", 5),
          point("pump-temp", "2026-09-01T00:00:07Z", 7),
          point("pump-temp", "2026-09-01T00:00:06Z", 6),
          point("pump-temp", "2026-09-01T00:00:07Z", 77, "Uncertain"),
        ],
        "history",
      );
      // History mode: the newest point, the later one of two at the same timestamp.
      expect((await store.getCurrentValues(["pump-temp"])).get("pump-temp")).toEqual({
        value: 77,
        quality: "Uncertain",
        timestamp: "2026-09-01T00:00:07.000Z",
      });
      const range = {
        startUs: parseTimestampUs("2026-09-01T00:00:00Z") as number,
        endUs: parseTimestampUs("2026-09-01T00:00:10Z") as number,
        limitPerElement: 100,
      };
      const both = await readHistory(store, ["pump", "pump-temp", "pump"], range);
      expect(both.get("pump")?.points.map((p) => p.value)).toEqual([{ speed: 2 }, { speed: 3 }]);
      expect(both.get("pump-temp")?.points.map((p) => p.value)).toEqual([5, 6, 77]);
    });

    it("round-trips microsecond timestamps and structured values exactly", async () => {
      await store.importModel(contractModel());
      const value = { speed: 12.5, nested: { list: [1, "two", null, true] }, text: "ünïcødé \u2603" };
      await store.writePoints([point("pump", "2026-04-01T10:30:00.123456Z", value)], "current");
      const got = (await store.getCurrentValues(["pump"])).get("pump");
      expect(got).toEqual({ value, quality: "Good", timestamp: "2026-04-01T10:30:00.123456Z" });
    });

    it("renders history as JSON text byte for byte as its points serialize", async () => {
      await store.importModel(contractModel());
      const values: unknown[] = [
        { speed: 12.5, nested: { list: [1, "two", null, true] }, z: 1, a: 2 },
        'quote " backslash \\ newline \n tab \t \u2028 ünïcødé \u2603 😀',
        -1.5e-7,
        1e21,
        0,
        false,
        [],
        {},
      ];
      const pts = values.map((v, i) => point("pump", `2026-04-02T00:00:0${i}.00012${i}Z`, v, "Uncertain"));
      pts.push(point("pump", "2026-04-02T00:00:09Z", null, "Bad"));
      await store.writePoints(pts, "history");
      const odd = `pump${String.fromCharCode(0)}`;
      const ids = ["pump", "pump-temp", "tank", "pump", "ghost", odd];
      const narrow = {
        ...ALL,
        startUs: parseTimestampUs("2026-04-02T00:00:01Z") as number,
        limitPerElement: 3,
      };
      // Everything stored: the model's initial values and history, then these points.
      const model = contractModel();
      const stored = [...(model.history ?? []), ...(model.values ?? [])]
        .map((v) => point(v.elementId, v.timestamp, v.value, v.quality))
        .concat(pts);
      for (const range of [ALL, narrow, { ...ALL, limitPerElement: pts.length }]) {
        const texts = await store.getHistoryJson(ids, range);
        expect([...texts.keys()].sort()).toEqual([...new Set(ids)].sort());
        for (const [id, text] of texts) {
          const inRange = stored
            .filter((p) => p.elementId === id && p.tsUs >= range.startUs && p.tsUs <= range.endUs)
            .sort((a, b) => a.tsUs - b.tsUs);
          const kept = inRange.slice(0, range.limitPerElement);
          expect({ ...text, json: jsonText(text.json) }).toEqual({
            json: JSON.stringify(kept.map((p) => p.vqt)),
            count: kept.length,
            truncated: inRange.length > range.limitPerElement,
          });
        }
      }
      const all = (await store.getHistoryJson(["pump"], ALL)).get("pump");
      expect(all?.count).toBe(pts.length);
      expect(JSON.parse(jsonText(all?.json ?? "null"))[1].value).toBe(values[1]);
    });

    it("writes a batch atomically: a failure part-way stores nothing", async () => {
      await store.importModel(contractModel());
      const good = point("pump-temp", "2026-05-01T00:00:00Z", 1);
      // A point the database refuses (no timestamp) after a good one: the whole batch must fail.
      const bad = { ...point("pump-temp", "2026-05-01T00:00:01Z", 2), tsUs: Number.NaN };
      await expect(store.writePoints([good, bad], "current")).rejects.toBeTruthy();
      const hist = (await readHistory(store, ["pump-temp"], ALL)).get("pump-temp");
      expect(hist?.points.map((p) => p.value)).toEqual([39, 39.5, 40.5]);
      expect((await store.getCurrentValues(["pump-temp"])).get("pump-temp")?.value).toBe(40.5);
    });

    it("writes a 1,000-point batch for one element in one call", async () => {
      await store.importModel(contractModel());
      const base = Date.UTC(2026, 6, 1) * 1000;
      const pts = Array.from({ length: 1000 }, (_, i) => {
        const tsUs = base + i * 1_000_000;
        return {
          elementId: "pump-temp",
          tsUs,
          vqt: { value: i, quality: "Good" as const, timestamp: formatTimestampUs(tsUs) },
        };
      });
      await store.writePoints(pts, "history");
      const slice = (
        await readHistory(store, ["pump-temp"], {
          startUs: base,
          endUs: base + 999_000_000,
          limitPerElement: 5000,
        })
      ).get("pump-temp");
      expect(slice?.points).toHaveLength(1000);
      expect(slice?.points[999].value).toBe(999);
    });

    it("removes objects with everything below them, their edges both ways, values and history", async () => {
      await store.importModel(contractModel());
      await store.writePoints([point("pump", "2026-01-02T00:00:00Z", { speed: 3 })], "current");
      expect(await store.removeObjects(["pump", "missing"]).then((ids) => ids.sort())).toEqual([
        "pump",
        "pump-temp",
      ]);
      expect([...(await store.getObjects(["pump", "pump-temp", "site", "tank"])).keys()].sort()).toEqual([
        "site",
        "tank",
      ]);
      expect((await store.listObjects()).map((o) => o.elementId).sort()).toEqual(["site", "tank"]);
      // No edge names them from either end: the site's children, the tank's graph edge.
      const left = await store.getRelationships(["site", "tank", "pump", "pump-temp"]);
      expect(left.map((e) => `${e.sourceId} ${e.relationshipType} ${e.targetId}`).sort()).toEqual([
        "site HasChildren tank",
        "tank HasParent site",
      ]);
      expect((await store.getCurrentValues(["pump", "pump-temp"])).size).toBe(0);
      const hist = await readHistory(store, ["pump-temp", "pump"], ALL);
      expect(hist.get("pump-temp")?.points ?? []).toEqual([]);
      expect(hist.get("pump")?.points ?? []).toEqual([]);
      // Gone for good, and a second removal finds nothing to remove.
      store = await h.reopen();
      expect((await store.getObjects(["pump", "pump-temp"])).size).toBe(0);
      expect(await store.removeObjects(["pump", "pump-temp"])).toEqual([]);
      // Created again, an element starts a new history.
      await store.importModel(contractModel());
      const again = await readHistory(store, ["pump-temp"], ALL);
      expect(again.get("pump-temp")?.points.map((p) => p.value)).toEqual([39, 39.5, 40.5]);
    });

    it("removing the last component ends a composition; removing a root removes the tree", async () => {
      await store.importModel(contractModel());
      expect(await store.removeObjects(["pump-temp"])).toEqual(["pump-temp"]);
      expect((await store.getObjects(["pump"])).get("pump")?.isComposition).toBe(false);
      expect(await store.getRelationships(["pump"], "HasComponent")).toEqual([]);
      expect((await store.removeObjects(["site"])).sort()).toEqual(["pump", "site", "tank"]);
      expect(await store.listObjects()).toEqual([]);
      expect(await store.isEmpty()).toBe(false);
      expect(await store.removeObjects([])).toEqual([]);
    });

    it("keeps everything across close and reopen", async () => {
      await store.importModel(contractModel());
      await store.writePoints([point("pump", "2026-08-01T00:00:00Z", { speed: 7 })], "current");
      store = await h.reopen();
      expect((await store.getObjects(["pump"])).get("pump")?.isComposition).toBe(true);
      expect((await store.getCurrentValues(["pump"])).get("pump")?.value).toEqual({ speed: 7 });
      expect((await store.getRelationships(["tank"], "SuppliedBy")).map((e) => e.targetId)).toEqual(["pump"]);
    });
  });
}
