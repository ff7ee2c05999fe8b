// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, postText } from "../helpers/http.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const PUMP_COMPONENTS = ["pump-101-measurements", "pump-101-motor", "pump-101-state"];
const MEASUREMENT_COMPONENTS = [
  "pump-101-bearing-temperature",
  "pump-101-discharge-pressure",
  "pump-101-flow",
  "pump-101-motor-speed",
];

let server: TestServer;
let url: string;

beforeAll(async () => {
  server = await startTestServer();
  url = server.url;
  // An object whose source has never reported a value.
  await server.store.importModel({
    namespaces: [],
    objectTypes: [],
    relationshipTypes: [],
    objects: [
      {
        elementId: "spare-sensor",
        displayName: "Spare sensor",
        typeElementId: "temperature-type",
        parentId: "area-pumping",
      },
    ],
  });
});
afterAll(async () => {
  await server?.close();
});

const value = (body: unknown) => postJson(url, "/v1/objects/value", body);

function expectVqt(v: any) {
  expect(["Good", "GoodNoData", "Bad", "Uncertain"]).toContain(v.quality);
  expect(v.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  if (v.value === null) expect(["Bad", "GoodNoData"]).toContain(v.quality);
}

describe("POST /v1/objects/value", () => {
  it("returns a leaf's bare scalar with isComposition false", async () => {
    const res = await value({ elementIds: ["sensor-001"] });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const item = res.body.results[0];
    expect(item.elementId).toBe("sensor-001");
    expect(Object.keys(item.result).sort()).toEqual(["isComposition", "quality", "timestamp", "value"]);
    expect(item.result.isComposition).toBe(false);
    expect(typeof item.result.value).toBe("number");
    expect(item.result.quality).toBe("Good");
    expectVqt(item.result);
  });

  it("maxDepth 1 (the default) gives pump-101's own VQT without components", async () => {
    for (const body of [{ elementIds: ["pump-101"] }, { elementIds: ["pump-101"], maxDepth: 1 }]) {
      const res = await value(body);
      const result = res.body.results[0].result;
      expect(result.isComposition).toBe(true);
      expect(result.components).toBeUndefined();
      expect(typeof result.value).toBe("object");
      expectVqt(result);
    }
  });

  it("maxDepth 2 adds pump-101's direct components, not their own components", async () => {
    const res = await value({ elementIds: ["pump-101"], maxDepth: 2 });
    expect(res.status).toBe(200);
    const result = res.body.results[0].result;
    expect(result.isComposition).toBe(true);
    expect(Object.keys(result.components).sort()).toEqual(PUMP_COMPONENTS);
    for (const c of Object.values<any>(result.components)) {
      expectVqt(c);
      expect(c.components).toBeUndefined();
    }
    // The leaf state component returns its scalar as a bare value.
    expect(typeof result.components["pump-101-state"].value).toBe("string");
  });

  it("maxDepth 0 returns the whole composition tree, nested by level", async () => {
    const res = await value({ elementIds: ["pump-101"], maxDepth: 0 });
    expect(res.status).toBe(200);
    expect(res.body.responseDetail).toBeUndefined();
    const result = res.body.results[0].result;
    expect(Object.keys(result.components).sort()).toEqual(PUMP_COMPONENTS);
    const measurements = result.components["pump-101-measurements"];
    expect(Object.keys(measurements.components).sort()).toEqual(MEASUREMENT_COMPONENTS);
    expect(typeof measurements.components["pump-101-bearing-temperature"].value).toBe("number");
    expect(measurements.components["pump-101-bearing-temperature"].components).toBeUndefined();
    // A deep enough explicit depth gives the same tree.
    const deep = await value({ elementIds: ["pump-101"], maxDepth: 5 });
    expect(
      Object.keys(deep.body.results[0].result.components["pump-101-measurements"].components).sort(),
    ).toEqual(MEASUREMENT_COMPONENTS);
  });

  it("never follows hierarchical children", async () => {
    const res = await value({ elementIds: ["area-pumping", "tank-201"], maxDepth: 0 });
    for (const item of res.body.results) {
      expect(item.result.isComposition).toBe(false);
      expect(item.result.components).toBeUndefined();
    }
  });

  it("answers an object without a stored value as GoodNoData with value null", async () => {
    const before = Date.now();
    const res = await value({ elementIds: ["spare-sensor"] });
    const result = res.body.results[0].result;
    expect(result).toMatchObject({ isComposition: false, value: null, quality: "GoodNoData" });
    expect(Date.parse(result.timestamp)).toBeGreaterThanOrEqual(before - 1000);
  });

  it("keeps request order and size with per-item 404s", async () => {
    const res = await value({ elementIds: ["ghost", "sensor-002", "ghost", "pump-101"], maxDepth: 2 });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results.map((r: any) => r.elementId)).toEqual([
      "ghost",
      "sensor-002",
      "ghost",
      "pump-101",
    ]);
    expect(res.body.results[0]).toEqual({
      success: false,
      elementId: "ghost",
      responseDetail: { title: "Not Found", status: 404, detail: "Element not found: ghost" },
    });
    expect(res.body.results[1].success).toBe(true);
    expect(res.body.results[3].result.components).toBeDefined();
  });

  it("answers a repeated read with the serializer's bytes, and a written value at once", async () => {
    const post = (body: unknown) => postText(`${url}/v1/objects/value`, body);
    const ids = ["sensor-001", "sensor-002", "sensor-001"];
    await post({ elementIds: ids });
    const text = await post({ elementIds: ids });
    expect(await post({ elementIds: ids })).toBe(text);
    expect(text).toBe(JSON.stringify(JSON.parse(text)));
    // A 404 item takes the same items through the route's serializer: the bytes must be the same.
    const items = text.slice(text.indexOf("[") + 1, text.lastIndexOf("]"));
    expect(await post({ elementIds: [...ids, "ghost"] })).toContain(
      `[${items},{"success":false,"elementId":"ghost"`,
    );

    const written = await postJson(
      url,
      "/v1/objects/value",
      { updates: [{ elementId: "sensor-002", value: { value: 12.75, quality: "Uncertain" } }] },
      { method: "PUT" },
    );
    expect(written.status).toBe(200);
    // The first read after the write fills the cache again; the second is answered from it.
    await post({ elementIds: ids });
    const after = JSON.parse(await post({ elementIds: ids }));
    expect(after.results.map((r: any) => [r.elementId, r.result.value, r.result.quality])).toEqual([
      ["sensor-001", JSON.parse(text).results[0].result.value, "Good"],
      ["sensor-002", 12.75, "Uncertain"],
      ["sensor-001", JSON.parse(text).results[0].result.value, "Good"],
    ]);
  });

  it("rejects a negative, fractional or quoted maxDepth", async () => {
    for (const maxDepth of [-1, 1.5, "2"]) {
      const res = await value({ elementIds: ["pump-101"], maxDepth });
      expect(res.status).toBe(400);
      expect(res.body.success).toBe(false);
      expect(res.body.responseDetail.detail).toContain("maxDepth");
    }
  });
});

describe("composition deeper than the server limit", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({ I3XD_MAX_COMPOSITION_DEPTH: "1" });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it("answers 206 with what it gathered and a responseDetail naming where it stopped", async () => {
    const res = await postJson(limited.url, "/v1/objects/value", {
      elementIds: ["pump-101", "sensor-001"],
      maxDepth: 0,
    });
    expect(res.status).toBe(206);
    expect(res.body.success).toBe(true);
    expect(res.body.responseDetail).toMatchObject({ status: 206, title: expect.any(String) });
    expect(res.body.responseDetail.detail).toContain("pump-101-measurements");
    const result = res.body.results[0].result;
    expect(Object.keys(result.components).sort()).toEqual(PUMP_COMPONENTS);
    expect(result.components["pump-101-measurements"].components).toBeUndefined();
  });

  it("does not call a depth the client chose partial", async () => {
    const res = await postJson(limited.url, "/v1/objects/value", { elementIds: ["pump-101"], maxDepth: 2 });
    expect(res.status).toBe(200);
    expect(res.body.responseDetail).toBeUndefined();
  });

  it("is partial when the client asks for more than the limit", async () => {
    const res = await postJson(limited.url, "/v1/objects/value", { elementIds: ["pump-101"], maxDepth: 3 });
    expect(res.status).toBe(206);
  });
});
