// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { describe, expect, it } from "vitest";
import type { ValueChange } from "../../src/domain/changes.js";
import { dataPointsWritten } from "../../src/observability/metrics.js";
import { getJson, postJson } from "../helpers/http.js";
import { useTestServer } from "../helpers/server.js";

const srv = useTestServer();

const putValue = (body: unknown) => postJson(srv.url, "/v1/objects/value", body, { method: "PUT" });
const putHistory = (body: unknown) => postJson(srv.url, "/v1/objects/history", body, { method: "PUT" });
const readValue = async (id: string) => {
  const res = await postJson(srv.url, "/v1/objects/value", { elementIds: [id] });
  expect(res.status).toBe(200);
  const { isComposition: _c, components: _x, ...vqt } = res.body.results[0].result;
  return vqt;
};
const readHistory = async (id: string, startTime: string, endTime: string) => {
  const res = await postJson(srv.url, "/v1/objects/history", { elementIds: [id], startTime, endTime });
  expect(res.status).toBe(200);
  return res.body.results[0].result.values as any[];
};
const statuses = (body: any) => body.results.map((r: any) => (r.success ? 200 : r.responseDetail.status));

async function pointsWritten(entityType: string): Promise<number> {
  const metric = await dataPointsWritten.get();
  return metric.values.find((v) => v.labels.entity_type === entityType)?.value ?? 0;
}

function collectChanges(): { changes: ValueChange[]; stop: () => void } {
  const changes: ValueChange[] = [];
  const stop = srv.server.services.changes.subscribe((batch) => changes.push(...batch));
  return { changes, stop };
}

describe("capabilities", () => {
  it("/info declares both update capabilities once the PUT routes exist", async () => {
    const res = await getJson(srv.url, "/v1/info");
    expect(res.body.result.capabilities.update).toEqual({ current: true, history: true });
  });
});

describe("PUT /v1/objects/value", () => {
  it("writes values that read back exactly, microsecond timestamps included", async () => {
    const updates = [
      {
        elementId: "sensor-001",
        value: { value: 21.125, quality: "Good", timestamp: "2030-01-02T03:04:05.123456Z" },
      },
      {
        elementId: "tank-201",
        value: {
          value: {
            level: 55.5,
            volume: 277.5,
            temperature: null,
            highLevelAlarm: false,
            lowLevelAlarm: false,
          },
          quality: "Uncertain",
          timestamp: "2030-01-02T03:04:05.000001Z",
        },
      },
      {
        elementId: "pump-101-state",
        value: { value: "Stopped", quality: "Good", timestamp: "2030-01-02T03:04:05.5Z" },
      },
      {
        elementId: "pump-101-motor-speed",
        value: { value: 0, quality: "Good", timestamp: "2030-01-02T03:04:05.123Z" },
      },
    ];
    const res = await putValue({ updates });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      results: updates.map((u) => ({ success: true, elementId: u.elementId, result: null })),
    });
    for (const u of updates.slice(0, 2)) expect(await readValue(u.elementId)).toEqual(u.value);
    expect(await readValue("pump-101-state")).toEqual({
      value: "Stopped",
      quality: "Good",
      timestamp: "2030-01-02T03:04:05.500Z",
    });
    expect((await readValue("pump-101-motor-speed")).timestamp).toBe("2030-01-02T03:04:05.123Z");
  });

  it("defaults quality to Good and the timestamp to the time of receipt", async () => {
    const before = Date.now();
    const res = await putValue({ updates: [{ elementId: "sensor-002", value: { value: 1.75 } }] });
    const after = Date.now();
    expect(res.body.success).toBe(true);
    const vqt = await readValue("sensor-002");
    expect(vqt.value).toBe(1.75);
    expect(vqt.quality).toBe("Good");
    expect(vqt.timestamp).toMatch(/Z$/);
    expect(Date.parse(vqt.timestamp)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(vqt.timestamp)).toBeLessThanOrEqual(after);
  });

  it("appends current writes to history", async () => {
    const ts = "2031-05-06T07:08:09.654321Z";
    await putValue({ updates: [{ elementId: "sensor-001", value: { value: 19.5, timestamp: ts } }] });
    const values = await readHistory("sensor-001", ts, ts);
    expect(values).toEqual([{ value: 19.5, quality: "Good", timestamp: ts }]);
  });

  it("keeps good items and rejects bad ones, each with its own code, leaving stored data intact", async () => {
    const tankBefore = await readValue("tank-201");
    const pumpBefore = await readValue("pump-101");
    const switchBefore = await readValue("tank-201-high-level-switch");
    const flowsBefore = await pointsWritten("flow-rate-type");
    const feed = collectChanges();
    const ts = "2032-01-01T00:00:00.000001Z";
    const res = await putValue({
      updates: [
        { elementId: "pump-101-flow", value: { value: 61.25, timestamp: ts } },
        { elementId: "no-such-element", value: { value: 1 } },
        {
          elementId: "tank-201",
          value: { value: { level: "high", volume: 1, highLevelAlarm: false, lowLevelAlarm: false } },
        },
        {
          elementId: "tank-201",
          value: { value: { level: null, volume: 1, highLevelAlarm: false, lowLevelAlarm: false } },
        },
        { elementId: "pump-101", value: { value: { mode: "Auto" } } },
        { elementId: "tank-201-high-level-switch", value: { value: null, quality: "Good" } },
        { elementId: "tank-201-high-level-switch", value: { value: null } },
        {
          elementId: "tank-201-high-level-switch",
          value: { value: true, quality: "Uncertain", timestamp: "yesterday" },
        },
        {
          elementId: "tank-201-high-level-switch",
          value: { value: true, timestamp: "2032-01-01T00:00:00+02:00" },
        },
        { elementId: "tank-201-high-level-switch", value: { value: true, quality: "Excellent" } },
        { elementId: "tank-201-high-level-switch", value: { value: true, quality: "Bad" } },
        { elementId: "pump-101-motor-speed", value: { value: 1450.5 } },
        {
          elementId: "pump-101-discharge-pressure",
          value: { value: 2.5, quality: "Uncertain", timestamp: ts },
        },
      ],
    });
    feed.stop();
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(statuses(res.body)).toEqual([200, 404, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 200]);
    expect(res.body.results.map((r: any) => r.elementId)).toEqual([
      "pump-101-flow",
      "no-such-element",
      "tank-201",
      "tank-201",
      "pump-101",
      ...Array(6).fill("tank-201-high-level-switch"),
      "pump-101-motor-speed",
      "pump-101-discharge-pressure",
    ]);
    const detail = (i: number) => res.body.results[i].responseDetail.detail as string;
    expect(res.body.results[1].responseDetail).toEqual({
      title: "Not Found",
      status: 404,
      detail: "Element not found: no-such-element",
    });
    expect(res.body.results[2].responseDetail.title).toBe("Bad Request");
    expect(detail(2)).toMatch(/value\.level must be of type number/);
    expect(detail(3)).toMatch(/value\.level is null but the schema does not declare it nullable/);
    expect(detail(4)).toMatch(/missing required field "speedSetpoint"/);
    expect(detail(5)).toMatch(/null.*Bad or GoodNoData/);
    expect(detail(6)).toMatch(/null.*Bad or GoodNoData/);
    expect(detail(7)).toMatch(/timestamp must be an RFC 3339 UTC timestamp/);
    expect(detail(8)).toMatch(/timestamp must be an RFC 3339 UTC timestamp/);
    expect(detail(9)).toMatch(/quality must be one of Good, GoodNoData, Bad, Uncertain/);
    expect(detail(10)).toMatch(/quality Bad means no value/);
    expect(detail(11)).toMatch(/must be of type integer/);

    expect(await readValue("pump-101-flow")).toEqual({ value: 61.25, quality: "Good", timestamp: ts });
    expect(await readValue("pump-101-discharge-pressure")).toEqual({
      value: 2.5,
      quality: "Uncertain",
      timestamp: ts,
    });
    expect(await readValue("tank-201")).toEqual(tankBefore);
    expect(await readValue("pump-101")).toEqual(pumpBefore);
    expect(await readValue("tank-201-high-level-switch")).toEqual(switchBefore);
    // Only the stored points are counted and announced.
    expect((await pointsWritten("flow-rate-type")) - flowsBefore).toBe(1);
    expect(feed.changes.map((c) => c.elementId)).toEqual(["pump-101-flow", "pump-101-discharge-pressure"]);
  });

  it("passes null through for nullable fields and for Bad / GoodNoData values", async () => {
    const motor = { running: false, current: 0, power: 0, windingTemperature: null };
    const res = await putValue({
      updates: [
        { elementId: "pump-101-motor", value: { value: motor, timestamp: "2033-01-01T00:00:00Z" } },
        {
          elementId: "sensor-002",
          value: { value: null, quality: "Bad", timestamp: "2033-01-01T00:00:01Z" },
        },
        {
          elementId: "sensor-001",
          value: { value: null, quality: "GoodNoData", timestamp: "2033-01-01T00:00:02Z" },
        },
      ],
    });
    expect(statuses(res.body)).toEqual([200, 200, 200]);
    expect((await readValue("pump-101-motor")).value).toEqual(motor);
    expect(await readValue("sensor-002")).toEqual({
      value: null,
      quality: "Bad",
      timestamp: "2033-01-01T00:00:01.000Z",
    });
    expect((await readValue("sensor-001")).quality).toBe("GoodNoData");
  });

  it("announces every stored current value on the change feed, in request order", async () => {
    const feed = collectChanges();
    await putValue({
      updates: [
        { elementId: "sensor-001", value: { value: 1, timestamp: "2034-01-01T00:00:00.000001Z" } },
        { elementId: "sensor-002", value: { value: 2, timestamp: "2034-01-01T00:00:00.000002Z" } },
        { elementId: "sensor-001", value: { value: 3, timestamp: "2034-01-01T00:00:00.000003Z" } },
      ],
    });
    feed.stop();
    expect(feed.changes).toEqual([
      {
        elementId: "sensor-001",
        vqt: { value: 1, quality: "Good", timestamp: "2034-01-01T00:00:00.000001Z" },
      },
      {
        elementId: "sensor-002",
        vqt: { value: 2, quality: "Good", timestamp: "2034-01-01T00:00:00.000002Z" },
      },
      {
        elementId: "sensor-001",
        vqt: { value: 3, quality: "Good", timestamp: "2034-01-01T00:00:00.000003Z" },
      },
    ]);
    expect((await readValue("sensor-001")).value).toBe(3);
  });

  it("counts stored points per object type", async () => {
    const temps = await pointsWritten("temperature-type");
    const flows = await pointsWritten("flow-rate-type");
    await putValue({
      updates: [
        { elementId: "sensor-001", value: { value: 10 } },
        { elementId: "pump-101-bearing-temperature", value: { value: 40 } },
        { elementId: "pump-101-flow", value: { value: 50 } },
        { elementId: "pump-101-flow", value: { value: "bad" } },
      ],
    });
    expect((await pointsWritten("temperature-type")) - temps).toBe(2);
    expect((await pointsWritten("flow-rate-type")) - flows).toBe(1);
  });

  it("answers an empty update list with an empty bulk result", async () => {
    const res = await putValue({ updates: [] });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true, results: [] });
  });

  it("rejects malformed bodies as a whole with a 400 envelope", async () => {
    const bad: unknown[] = [
      {},
      { updates: "sensor-001" },
      { updates: [{ elementId: "sensor-001" }] },
      { updates: [{ value: { value: 1 } }] },
      { updates: [{ elementId: "sensor-001", value: 5 }] },
      { updates: [{ elementId: "sensor-001", value: { quality: "Good" } }] },
      { updates: [{ elementId: 7, value: { value: 1 } }] },
      "{not json",
    ];
    for (const body of bad) {
      const res = await putValue(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.success).toBe(false);
      expect(res.body.responseDetail.status).toBe(400);
      expect(res.body.responseDetail.title).toBe("Bad Request");
      expect(typeof res.body.responseDetail.detail).toBe("string");
    }
    const tooMany = Array.from({ length: srv.server.services.config.maxBulkItems + 1 }, () => ({
      elementId: "sensor-001",
      value: { value: 1 },
    }));
    expect((await putValue({ updates: tooMany })).status).toBe(400);
  });
});

describe("PUT /v1/objects/history", () => {
  it("writes records that read back exactly, in time order", async () => {
    const points = [
      { value: 3.25, quality: "Good", timestamp: "2020-06-01T10:00:00.000003Z" },
      { value: 1.5, quality: "Good", timestamp: "2020-06-01T10:00:00.000001Z" },
      { value: null, quality: "Bad", timestamp: "2020-06-01T10:00:00.000002Z" },
      { value: 4, quality: "Uncertain", timestamp: "2020-06-01T10:00:01.123456Z" },
    ];
    const res = await putHistory({ updates: points.map((value) => ({ elementId: "sensor-002", value })) });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    expect(statuses(res.body)).toEqual([200, 200, 200, 200]);
    const values = await readHistory("sensor-002", "2020-06-01T10:00:00Z", "2020-06-01T10:00:02Z");
    expect(values).toEqual([points[1], points[2], points[0], points[3]]);
  });

  it("replaces the record at an existing timestamp", async () => {
    const ts = "2020-07-01T00:00:00.5Z";
    await putHistory({
      updates: [{ elementId: "sensor-001", value: { value: 1, quality: "Good", timestamp: ts } }],
    });
    await putHistory({
      updates: [{ elementId: "sensor-001", value: { value: 2, quality: "Uncertain", timestamp: ts } }],
    });
    const values = await readHistory("sensor-001", ts, ts);
    expect(values).toEqual([{ value: 2, quality: "Uncertain", timestamp: "2020-07-01T00:00:00.500Z" }]);
  });

  it("requires quality and timestamp and applies the same value rules per item", async () => {
    const before = await readHistory("pump-101-flow", "2020-08-01T00:00:00Z", "2020-08-01T00:00:10Z");
    const res = await putHistory({
      updates: [
        {
          elementId: "pump-101-flow",
          value: { value: 10, quality: "Good", timestamp: "2020-08-01T00:00:01Z" },
        },
        { elementId: "pump-101-flow", value: { value: 10, quality: "Good" } },
        { elementId: "pump-101-flow", value: { value: 10, timestamp: "2020-08-01T00:00:02Z" } },
        {
          elementId: "pump-101-flow",
          value: { value: -1, quality: "Good", timestamp: "2020-08-01T00:00:03Z" },
        },
        {
          elementId: "pump-101-flow",
          value: { value: 1, quality: "Good", timestamp: "2020-08-01T00:00:04" },
        },
        { elementId: "ghost", value: { value: 1, quality: "Good", timestamp: "2020-08-01T00:00:05Z" } },
      ],
    });
    expect(statuses(res.body)).toEqual([200, 400, 400, 400, 400, 404]);
    expect(res.body.results[1].responseDetail.detail).toMatch(/timestamp is required/);
    expect(res.body.results[2].responseDetail.detail).toMatch(/quality is required/);
    expect(res.body.results[3].responseDetail.detail).toMatch(/value must be >= 0/);
    const after = await readHistory("pump-101-flow", "2020-08-01T00:00:00Z", "2020-08-01T00:00:10Z");
    expect(before.filter((v) => v.quality !== "GoodNoData")).toEqual([]);
    expect(after).toEqual([{ value: 10, quality: "Good", timestamp: "2020-08-01T00:00:01.000Z" }]);
  });

  it("changes the current value only with a point at least as new as it, and announces only that", async () => {
    const current = await readValue("pump-101-bearing-temperature");
    const feed = collectChanges();
    const old = await putHistory({
      updates: [
        {
          elementId: "pump-101-bearing-temperature",
          value: { value: 11, quality: "Good", timestamp: "2020-09-01T00:00:00Z" },
        },
      ],
    });
    expect(old.body.success).toBe(true);
    expect(await readValue("pump-101-bearing-temperature")).toEqual(current);
    expect(feed.changes).toEqual([]);

    const newer = {
      value: 44.5,
      quality: "Good",
      timestamp: new Date(Date.parse(current.timestamp) + 60_000).toISOString(),
    };
    const res = await putHistory({
      updates: [
        {
          elementId: "pump-101-bearing-temperature",
          value: { ...newer, value: 44, timestamp: "2020-09-01T00:00:01Z" },
        },
        { elementId: "pump-101-bearing-temperature", value: newer },
      ],
    });
    feed.stop();
    expect(res.body.success).toBe(true);
    expect(await readValue("pump-101-bearing-temperature")).toEqual(newer);
    expect(feed.changes).toEqual([{ elementId: "pump-101-bearing-temperature", vqt: newer }]);
  });

  it("stores a batch of 1,000 points for one element atomically", async () => {
    const base = Date.parse("2021-03-01T00:00:00Z");
    const updates = Array.from({ length: 1000 }, (_, i) => ({
      elementId: "sensor-002",
      value: {
        value: 1 + (i % 50) / 100,
        quality: "Good",
        timestamp: new Date(base + i * 1000).toISOString(),
      },
    }));
    const range = ["2021-03-01T00:00:00Z", "2021-03-01T01:00:00Z"] as const;
    const counted = async () =>
      (await readHistory("sensor-002", ...range)).filter((v) => v.quality !== "GoodNoData").length;
    const written = await pointsWritten("vibration-type");
    // Readers racing the write see all of the batch or none of it.
    const [res, ...seen] = await Promise.all([
      putHistory({ updates }),
      counted(),
      counted(),
      counted(),
      counted(),
    ]);
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    expect(res.body.results).toHaveLength(1000);
    for (const n of seen) expect([0, 1000]).toContain(n);
    const values = await readHistory("sensor-002", ...range);
    expect(values).toHaveLength(1000);
    expect(values.map((v) => v.value)).toEqual(updates.map((u) => u.value.value));
    expect(values[999].timestamp).toBe(updates[999].value.timestamp);
    expect((await pointsWritten("vibration-type")) - written).toBe(1000);
  });

  it("rejects malformed bodies with 400", async () => {
    for (const body of [{}, { updates: {} }, { updates: [{ elementId: "sensor-001", value: {} }] }]) {
      const res = await putHistory(body);
      expect(res.status).toBe(400);
      expect(res.body.success).toBe(false);
    }
  });
});
