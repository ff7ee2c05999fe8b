import { beforeEach, describe, expect, it } from "vitest";
import { Access } from "../../src/domain/access.js";
import { LocalChangeFeed, type ValueChange } from "../../src/domain/changes.js";
import type { ObjectRecord, ObjectType, Vqt } from "../../src/domain/model.js";
import { parseTimestampUs } from "../../src/domain/time.js";
import { setRootLogger } from "../../src/observability/logger.js";
import { WriteService } from "../../src/services/writes.js";
import type { PointWrite, Store, WriteMode } from "../../src/store/store.js";

const everything = Access.everything;

setRootLogger("silent");

// The service on its own, over a small in-memory store that records how it is called.
const types: ObjectType[] = [
  {
    elementId: "num",
    displayName: "num",
    namespaceUri: "urn:t",
    sourceTypeId: "num",
    schema: { type: "number" },
  },
  {
    elementId: "broken",
    displayName: "broken",
    namespaceUri: "urn:t",
    sourceTypeId: "broken",
    schema: { $ref: "#/nowhere" },
  },
];
const object = (elementId: string, typeElementId = "num"): ObjectRecord => ({
  elementId,
  displayName: elementId,
  typeElementId,
  parentId: null,
  isComposition: false,
  isExtended: false,
});
const objects = [object("a"), object("b"), object("odd", "broken")];

class MemoryStore {
  calls: string[] = [];
  writes: { points: PointWrite[]; mode: WriteMode }[] = [];
  current = new Map<string, Vqt>();
  fail = false;

  async getObjects(ids: readonly string[]) {
    this.calls.push(`getObjects:${ids.join(",")}`);
    return new Map(objects.filter((o) => ids.includes(o.elementId)).map((o) => [o.elementId, o]));
  }
  async getObjectTypes(ids: readonly string[]) {
    this.calls.push(`getObjectTypes:${[...ids].sort().join(",")}`);
    return new Map(types.filter((t) => ids.includes(t.elementId)).map((t) => [t.elementId, t]));
  }
  async getCurrentValues(ids: readonly string[]) {
    this.calls.push(`getCurrentValues:${ids.join(",")}`);
    return new Map([...this.current].filter(([id]) => ids.includes(id)));
  }
  // The port's contract: every point in current mode; in history mode each element's newest point, when
  // at least as new as the stored value.
  async writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    this.calls.push(`writePoints:${points.length}`);
    if (this.fail) throw new Error("disk full");
    this.writes.push({ points: [...points], mode });
    if (mode === "current") {
      for (const p of points) this.current.set(p.elementId, p.vqt);
      return [...points];
    }
    const newest = new Map<string, PointWrite>();
    for (const p of points) {
      const seen = newest.get(p.elementId);
      if (seen === undefined || p.tsUs >= seen.tsUs) newest.set(p.elementId, p);
    }
    const became = new Set<PointWrite>();
    for (const [id, p] of newest) {
      const cur = this.current.get(id);
      if (cur === undefined || p.tsUs >= (parseTimestampUs(cur.timestamp) ?? 0)) {
        this.current.set(id, p.vqt);
        became.add(p);
      }
    }
    return points.filter((p) => became.has(p));
  }
}

let store: MemoryStore;
let feed: LocalChangeFeed;
let published: ValueChange[][];
let service: WriteService;

beforeEach(() => {
  store = new MemoryStore();
  feed = new LocalChangeFeed();
  published = [];
  feed.subscribe((batch) => published.push([...batch]));
  service = new WriteService(store as unknown as Store, feed);
});

describe("WriteService", () => {
  it("reads objects and types once per request and stores all good items in one call", async () => {
    const results = await service.writeCurrent(everything, [
      { elementId: "a", value: { value: 1 } },
      { elementId: "b", value: { value: 2 } },
      { elementId: "a", value: { value: 3 } },
      { elementId: "x", value: { value: 4 } },
      { elementId: "b", value: { value: "two" } },
    ]);
    expect(results.map((r) => (r.success ? 200 : r.responseDetail.status))).toEqual([
      200, 200, 200, 404, 400,
    ]);
    expect(results.map((r) => r.id)).toEqual(["a", "b", "a", "x", "b"]);
    expect(store.calls).toEqual(["getObjects:a,b,x", "getObjectTypes:num", "writePoints:3"]);
    expect(store.writes[0].points.map((p) => p.vqt.value)).toEqual([1, 2, 3]);
    // One clock reading for the whole request.
    expect(new Set(store.writes[0].points.map((p) => p.tsUs)).size).toBe(1);
    expect(published).toHaveLength(1);
    expect(published[0].map((c) => c.vqt.value)).toEqual([1, 2, 3]);
  });

  it("does not touch the store when every item fails", async () => {
    const results = await service.writeCurrent(everything, [{ elementId: "x", value: { value: 1 } }]);
    expect(results[0].success).toBe(false);
    expect(store.calls).toEqual(["getObjects:x", "getObjectTypes:"]);
    expect(published).toEqual([]);
  });

  it("fails only the items whose type schema cannot be compiled", async () => {
    const results = await service.writeCurrent(everything, [
      { elementId: "odd", value: { value: 1 } },
      { elementId: "a", value: { value: 1 } },
    ]);
    expect(results[0]).toMatchObject({ success: false, responseDetail: { status: 500 } });
    expect(results[1].success).toBe(true);
  });

  it("publishes a history write only where it became the current value", async () => {
    store.current.set("a", { value: 5, quality: "Good", timestamp: "2025-01-01T00:00:10.000Z" });
    await service.writeHistory(everything, [
      { elementId: "a", value: { value: 1, quality: "Good", timestamp: "2025-01-01T00:00:01Z" } },
      { elementId: "b", value: { value: 2, quality: "Good", timestamp: "2025-01-01T00:00:02Z" } },
      { elementId: "b", value: { value: 3, quality: "Good", timestamp: "2025-01-01T00:00:03Z" } },
    ]);
    expect(store.writes[0].mode).toBe("history");
    // What became current is the write's own answer: nothing is read back.
    expect(store.calls.at(-1)).toBe("writePoints:3");
    expect(published).toEqual([
      [{ elementId: "b", vqt: { value: 3, quality: "Good", timestamp: "2025-01-01T00:00:03.000Z" } }],
    ]);
  });

  it("lets a store failure fail the request without publishing anything", async () => {
    store.fail = true;
    await expect(service.writeCurrent(everything, [{ elementId: "a", value: { value: 1 } }])).rejects.toThrow(
      "disk full",
    );
    expect(published).toEqual([]);
  });

  it("answers an empty request without touching the store", async () => {
    expect(await service.writeHistory(everything, [])).toEqual([]);
    expect(store.calls).toEqual([]);
  });
});
