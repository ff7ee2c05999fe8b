import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Access } from "../../src/domain/access.js";
import { HAS_COMPONENT, type ObjectRecord, type Relationship, type Vqt } from "../../src/domain/model.js";
import { setRootLogger } from "../../src/observability/logger.js";
import { cacheLookupsOf } from "../../src/observability/metrics.js";
import { ModelService, type ObjectListing } from "../../src/services/model.js";
import { ValueService } from "../../src/services/values.js";
import { CachedStore } from "../../src/store/decorators/cached.js";
import type { Store } from "../../src/store/store.js";

const everything = Access.everything;

setRootLogger("silent");

// The synchronous cache-only reads against the full reads over the same data without a cache: same
// answers, and the same cache counts as the full reads through the cache.
const object = (elementId: string, isComposition = false): ObjectRecord => ({
  elementId,
  displayName: `${elementId} name`,
  typeElementId: "t",
  parentId: isComposition ? null : "pump",
  isComposition,
  isExtended: false,
});
const objects = [object("pump", true), object("flow"), object("speed"), object("quiet"), object("__proto__")];
const values = new Map<string, Vqt>([
  ["pump", { value: { state: "run" }, quality: "Good", timestamp: "2025-01-08T10:30:00Z" }],
  ["flow", { value: 12.5, quality: "Good", timestamp: "2025-01-08T10:30:01Z" }],
  ["speed", { value: null, quality: "Bad", timestamp: "2025-01-08T10:30:02Z" }],
  ["__proto__", { value: [1, "x"], quality: "Uncertain", timestamp: "2025-01-08T10:30:03Z" }],
]);
const edges: Relationship[] = [
  { sourceId: "pump", relationshipType: HAS_COMPONENT, targetId: "flow" },
  { sourceId: "pump", relationshipType: HAS_COMPONENT, targetId: "speed" },
];

const memory = {
  async listObjects() {
    return objects.map((o) => ({ ...o }));
  },
  async getObjects(ids: readonly string[]) {
    const out = new Map<string, ObjectRecord>();
    for (const o of objects) if (ids.includes(o.elementId)) out.set(o.elementId, { ...o });
    return out;
  },
  async getCurrentValues(ids: readonly string[]) {
    const out = new Map<string, Vqt>();
    for (const id of ids) {
      const v = values.get(id);
      if (v) out.set(id, { ...v });
    }
    return out;
  },
  async getObjectTypes() {
    return new Map();
  },
  async getRelationships(ids: readonly string[], type?: string) {
    return edges.filter(
      (e) => ids.includes(e.sourceId) && (type === undefined || e.relationshipType === type),
    );
  },
} as unknown as Store;

const config = { maxCompositionDepth: 5, maxHistoryPoints: 1000, historyReadThroughMaxBytes: 1024 * 1024 };
const counts = () => ({ object: { ...cacheLookupsOf("object") }, value: { ...cacheLookupsOf("value") } });
const delta = (a: ReturnType<typeof counts>, b: ReturnType<typeof counts>) => ({
  object: { hits: a.object.hits - b.object.hits, misses: a.object.misses - b.object.misses },
  value: { hits: a.value.hits - b.value.hits, misses: a.value.misses - b.value.misses },
});

const requests: string[][] = [
  ["flow"],
  ["flow", "speed", "pump"],
  ["flow", "pump", "flow", "speed", "flow"],
  ["__proto__", "speed"],
  ["flow", "missing"],
  ["quiet", "flow"],
  [],
];

describe("reads answered from the cache alone", () => {
  // An element without a stored value reports the read time; a frozen clock keeps two reads of it equal.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"], now: new Date("2026-01-01T00:00:00Z") });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("current values: same answers and cache counts as the full read, synchronously when cached", async () => {
    const cache = new CachedStore(memory, 100);
    // The same cached store, once read through (no synchronous access) and once answered from directly.
    const full = new ValueService(cache, config);
    const fast = new ValueService(cache, config, () => cache);
    const plain = new ValueService(memory, config);
    let answered = 0;
    for (const ids of requests) {
      const expected = await plain.current(everything, ids);
      await full.current(everything, ids); // warms the cache
      const before = counts();
      const viaFull = await full.current(everything, ids);
      const fullCounts = delta(counts(), before);
      const at = counts();
      const answer = fast.current(everything, ids);
      const synchronous = !(answer instanceof Promise);
      const outcome = await answer;
      const fastCounts = delta(counts(), at);
      expect(viaFull.items).toEqual(expected.items);
      expect(JSON.stringify(outcome.items)).toBe(JSON.stringify(expected.items));
      expect(outcome.partial).toBe(expected.partial);
      if (synchronous) expect(outcome.sources?.every((s, i) => s === cache.cachedValue(ids[i]))).toBe(true);
      // Counted once either way: an answer the cache could not give whole counts only its full read.
      expect(fastCounts).toEqual(fullCounts);
      // A 404 and an element without a stored value need the full read.
      expect(synchronous).toBe(!ids.includes("missing") && !ids.includes("quiet"));
      if (synchronous) answered++;
    }
    expect(answered).toBe(5);
  });

  it("current values: any maxDepth other than 1 takes the full read", async () => {
    const cache = new CachedStore(memory, 100);
    const fast = new ValueService(cache, config, () => cache);
    await fast.current(everything, ["pump"], 0);
    await fast.current(everything, ["pump"], 2);
    expect(fast.current(everything, ["pump"], 0)).toBeInstanceOf(Promise);
    expect(fast.current(everything, ["pump"], 2)).toBeInstanceOf(Promise);
    expect(fast.current(everything, ["pump"], 1)).not.toBeInstanceOf(Promise);
  });

  it("objects by id and listings: same answers and cache counts as the full read, synchronously when cached", async () => {
    const cache = new CachedStore(memory, 100);
    const full = new ModelService(cache);
    const fast = new ModelService(cache, () => cache);
    const plain = new ModelService(memory);
    for (const ids of requests) {
      const expected = (await plain.listObjectsById(everything, ids)).items;
      await full.listObjectsById(everything, ids);
      const before = counts();
      await full.listObjectsById(everything, ids);
      const fullCounts = delta(counts(), before);
      const at = counts();
      const answer = fast.listObjectsById(everything, ids);
      const synchronous = !(answer instanceof Promise);
      const outcome = await answer;
      const fastCounts = delta(counts(), at);
      expect(synchronous).toBe(!ids.includes("missing"));
      expect(JSON.stringify(outcome.items)).toBe(JSON.stringify(expected));
      // Each item's source is the cached record it shows, the object rendered bytes are kept by.
      if (synchronous) expect(outcome.sources?.every((s, i) => s === cache.cachedObject(ids[i]))).toBe(true);
      expect(fastCounts).toEqual(fullCounts);
      const withMetadata = fast.listObjectsById(everything, ids, true);
      expect(withMetadata).toBeInstanceOf(Promise);
      expect(JSON.stringify(await withMetadata)).toBe(
        JSON.stringify(await plain.listObjectsById(everything, ids, true)),
      );
    }
    const first = fast.listObjects(everything, { root: true });
    expect(first).toBeInstanceOf(Promise);
    await first;
    const listing = fast.listObjects(everything, { root: true });
    expect(listing).not.toBeInstanceOf(Promise);
    expect((listing as ObjectListing).objects).toEqual(
      (await plain.listObjects(everything, { root: true })).objects,
    );
    // The source stays the same array while the model does: what rendered bodies are kept by.
    const source = (listing as ObjectListing).source;
    expect(source).toBe(cache.cachedListing({ root: true }));
    expect((fast.listObjects(everything, { root: true }) as ObjectListing).source).toBe(source);
    const withMetadata = fast.listObjects(everything, { root: true, includeMetadata: true });
    expect(withMetadata).toBeInstanceOf(Promise);
    expect(await withMetadata).toEqual(
      await plain.listObjects(everything, { root: true, includeMetadata: true }),
    );
  });
});
