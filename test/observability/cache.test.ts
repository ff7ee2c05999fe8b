import { describe, expect, it } from "vitest";
import { CachedStore } from "../../src/store/decorators/cached.js";
import { postJson } from "../helpers/http.js";
import { parseMetrics, sampleValue, scrape } from "../helpers/metrics.js";
import { useTestServer } from "../helpers/server.js";

const srv = useTestServer();

type Counts = Record<"object" | "type" | "value", { hits: number; misses: number }>;

async function cacheCounts(): Promise<Counts> {
  const samples = parseMetrics((await scrape(srv.url)).text);
  const of = (cache_type: string) => ({
    hits: sampleValue(samples, "cache_hits_total", { cache_type }),
    misses: sampleValue(samples, "cache_misses_total", { cache_type }),
  });
  return { object: of("object"), type: of("type"), value: of("value") };
}

function delta(after: Counts, before: Counts) {
  const d = (k: keyof Counts) => ({
    hits: after[k].hits - before[k].hits,
    misses: after[k].misses - before[k].misses,
  });
  return { object: d("object"), type: d("type"), value: d("value") };
}

const readValue = async (id: string) => {
  const res = await postJson(srv.url, "/v1/objects/value", { elementIds: [id] });
  expect(res.status).toBe(200);
  return res.body.results[0].result;
};

describe("store cache", () => {
  it("is in front of the store by default", () => {
    expect(srv.server.store).toBeInstanceOf(CachedStore);
  });

  it("counts a miss, then a hit, for the same look-up", async () => {
    const t0 = await cacheCounts();
    const first = await readValue("sensor-002");
    const t1 = await cacheCounts();
    expect(delta(t1, t0).value).toEqual({ hits: 0, misses: 1 });
    expect(delta(t1, t0).object.misses).toBeGreaterThanOrEqual(1);

    const second = await readValue("sensor-002");
    const t2 = await cacheCounts();
    expect(delta(t2, t1).value).toEqual({ hits: 1, misses: 0 });
    expect(delta(t2, t1).object.misses).toBe(0);
    expect(delta(t2, t1).object.hits).toBeGreaterThanOrEqual(1);
    expect(second).toEqual(first);

    await postJson(srv.url, "/v1/objecttypes/query", { elementIds: ["temperature-type", "no-such-type"] });
    const t3 = await cacheCounts();
    await postJson(srv.url, "/v1/objecttypes/query", { elementIds: ["temperature-type", "no-such-type"] });
    const t4 = await cacheCounts();
    // Absent ids are not cached: they miss every time, present ones hit the second time.
    expect(delta(t3, t2).type.misses).toBeGreaterThanOrEqual(1);
    expect(delta(t4, t3).type).toEqual({ hits: 1, misses: 1 });
  });

  it("drops a cached value when it is written, so the next read sees the write", async () => {
    await readValue("pump-101-flow");
    await readValue("pump-101-flow"); // cached now
    const t0 = await cacheCounts();
    const timestamp = new Date(Date.now() + 1000).toISOString();
    const write = await postJson(
      srv.url,
      "/v1/objects/value",
      { updates: [{ elementId: "pump-101-flow", value: { value: 42.25, quality: "Good", timestamp } }] },
      { method: "PUT" },
    );
    expect(write.status).toBe(200);
    expect(write.body.success).toBe(true);

    const after = await readValue("pump-101-flow");
    expect(after.value).toBe(42.25);
    expect(after.quality).toBe("Good");
    const t1 = await cacheCounts();
    expect(delta(t1, t0).value.misses).toBe(1);

    expect((await readValue("pump-101-flow")).value).toBe(42.25);
    expect(delta(await cacheCounts(), t1).value).toEqual({ hits: 1, misses: 0 });
  });
});
