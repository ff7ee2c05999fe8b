// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../helpers/http.js";
import { startTestServer, type TestServer, useTestServer } from "../helpers/server.js";

const srv = useTestServer();

const history = (body: unknown, base = srv.url) => postJson(base, "/v1/objects/history", body);
const iso = (ms: number) => new Date(ms).toISOString();

describe("POST /v1/objects/history", () => {
  it("returns the seeded points of the last hour in ascending time order, inside the range", async () => {
    const end = Date.now();
    const start = end - 3_600_000;
    const res = await history({ elementIds: ["sensor-001"], startTime: iso(start), endTime: iso(end) });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const item = res.body.results[0];
    expect(item.elementId).toBe("sensor-001");
    expect(item.result.isComposition).toBe(false);
    const values = item.result.values;
    expect(values.length).toBeGreaterThan(10);
    let last = -Infinity;
    for (const v of values) {
      const t = Date.parse(v.timestamp);
      expect(t).toBeGreaterThanOrEqual(start);
      expect(t).toBeLessThanOrEqual(end);
      expect(t).toBeGreaterThan(last);
      last = t;
      expect(v.quality).toBe("Good");
      expect(typeof v.value).toBe("number");
    }
  });

  it("includes both ends of the range", async () => {
    const end = Date.now();
    const wide = await history({
      elementIds: ["tank-201"],
      startTime: iso(end - 3_600_000),
      endTime: iso(end),
    });
    const stamps: string[] = wide.body.results[0].result.values.map((v: any) => v.timestamp);
    const [from, to] = [stamps[2], stamps[5]];
    const res = await history({ elementIds: ["tank-201"], startTime: from, endTime: to });
    expect(res.body.results[0].result.values.map((v: any) => v.timestamp)).toEqual(stamps.slice(2, 6));
    const single = await history({ elementIds: ["tank-201"], startTime: from, endTime: from });
    expect(single.body.results[0].result.values.map((v: any) => v.timestamp)).toEqual([from]);
  });

  it("answers a range without data with one GoodNoData entry at the range start", async () => {
    const res = await history({
      elementIds: ["sensor-001"],
      startTime: "2001-01-01T00:00:00Z",
      endTime: "2001-01-02T00:00:00Z",
    });
    expect(res.status).toBe(200);
    expect(res.body.results[0].result).toEqual({
      isComposition: false,
      values: [{ value: null, quality: "GoodNoData", timestamp: "2001-01-01T00:00:00.000Z" }],
    });
  });

  it("keeps request order and size with per-item 404s", async () => {
    const end = Date.now();
    const res = await history({
      elementIds: ["sensor-002", "ghost", "sensor-001"],
      startTime: iso(end - 600_000),
      endTime: iso(end),
    });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results.map((r: any) => r.elementId)).toEqual(["sensor-002", "ghost", "sensor-001"]);
    expect(res.body.results[1]).toEqual({
      success: false,
      elementId: "ghost",
      responseDetail: { title: "Not Found", status: 404, detail: "Element not found: ghost" },
    });
  });

  it("returns component histories of a composition when maxDepth asks for them", async () => {
    const end = Date.now();
    const range = { startTime: iso(end - 600_000), endTime: iso(end) };
    const flat = await history({ elementIds: ["pump-101"], ...range });
    expect(flat.body.results[0].result.isComposition).toBe(true);
    expect(flat.body.results[0].result.components).toBeUndefined();
    const deep = await history({ elementIds: ["pump-101"], maxDepth: 0, ...range });
    const result = deep.body.results[0].result;
    expect(Object.keys(result.components).sort()).toEqual([
      "pump-101-measurements",
      "pump-101-motor",
      "pump-101-state",
    ]);
    const bearing = result.components["pump-101-measurements"].components["pump-101-bearing-temperature"];
    expect(bearing.values.length).toBeGreaterThan(0);
    expect(typeof bearing.values[0].value).toBe("number");
  });

  it("rejects missing, malformed, offset or reversed times with 400", async () => {
    const ok = {
      elementIds: ["sensor-001"],
      startTime: "2025-01-01T00:00:00Z",
      endTime: "2025-01-02T00:00:00Z",
    };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...ok, startTime: undefined }, "startTime"],
      [{ ...ok, endTime: undefined }, "endTime"],
      [{ ...ok, startTime: "yesterday" }, "startTime"],
      [{ ...ok, endTime: "2025-01-02T01:00:00+01:00" }, "endTime"],
      [{ ...ok, startTime: "2025-02-30T00:00:00Z" }, "startTime"],
      [{ ...ok, startTime: null }, "startTime"],
      [{ ...ok, startTime: ok.endTime, endTime: ok.startTime }, "startTime"],
      [{ ...ok, elementIds: [] }, "elementIds"],
      [{ ...ok, maxDepth: -2 }, "maxDepth"],
    ];
    for (const [body, field] of cases) {
      const res = await history(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.success).toBe(false);
      expect(res.body.responseDetail.status).toBe(400);
      expect(res.body.responseDetail.detail).toContain(field);
    }
  });
});

describe("history beyond the per-element point limit", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({ I3XD_MAX_HISTORY_POINTS: "5" });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it("answers 206 with the earliest points and a responseDetail", async () => {
    const end = Date.now();
    const start = end - 3_600_000;
    const res = await history(
      { elementIds: ["sensor-001", "ghost"], startTime: iso(start), endTime: iso(end) },
      limited.url,
    );
    expect(res.status).toBe(206);
    expect(res.body.success).toBe(false);
    expect(res.body.responseDetail).toMatchObject({ status: 206 });
    expect(res.body.responseDetail.detail).toContain("sensor-001");
    const values = res.body.results[0].result.values;
    expect(values).toHaveLength(5);
    const stamps = values.map((v: any) => Date.parse(v.timestamp));
    expect([...stamps].sort((a, b) => a - b)).toEqual(stamps);
    // Nothing in the range precedes the first point returned: these are the earliest five.
    const head = await history(
      { elementIds: ["sensor-001"], startTime: iso(start), endTime: values[0].timestamp },
      limited.url,
    );
    expect(head.status).toBe(200);
    expect(head.body.results[0].result.values).toEqual([values[0]]);
  });
});
