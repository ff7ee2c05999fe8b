// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { Ajv } from "ajv";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bulk, historyResult, responses } from "../../src/api/schemas.js";
import { startTestServer, type TestServer, useTestServer } from "../helpers/server.js";

/**
 * The history route writes its body with its own serializer (series embedded as stored JSON text). These
 * checks hold real responses to the route's response schema and to the bytes the schema serializer
 * (fast-json-stringify, what every other route uses) makes of the same content.
 */
const schemas = responses(bulk("elementId", historyResult), { partial: true });
const ajv = new Ajv({ strict: false, allErrors: true });
const validate = { 200: ajv.compile(schemas[200]), 206: ajv.compile(schemas[206]) };

/** The schema serializer's output for a body with this content and status. */
const reference = Fastify({ bodyLimit: 100 * 1024 * 1024 });
reference.post<{ Body: { status: number; body: unknown } }>(
  "/",
  { schema: { response: schemas } },
  async (request, reply) => {
    reply.code(request.body.status);
    return request.body.body;
  },
);

async function served(base: string, body: unknown): Promise<{ status: number; text: string; body: any }> {
  const res = await fetch(`${base}/v1/objects/history`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) };
}

/** Checks one response against the schema and the schema serializer; returns the parsed body. */
async function check(base: string, request: unknown, status: 200 | 206): Promise<any> {
  const res = await served(base, request);
  expect(res.status).toBe(status);
  const valid = validate[status];
  expect(valid(res.body), JSON.stringify(valid.errors)).toBe(true);
  const ref = await reference.inject({
    method: "POST",
    url: "/",
    payload: { status, body: res.body },
  });
  expect(ref.statusCode).toBe(status);
  expect(res.text === ref.payload, "served body differs from the schema serializer's").toBe(true);
  return res.body;
}

const iso = (ms: number) => new Date(ms).toISOString();
const lastHour = () => {
  const end = Date.now();
  return { startTime: iso(end - 3_600_000), endTime: iso(end) };
};

const srv = useTestServer();

afterAll(async () => {
  await reference.close();
});

describe("history response body", () => {
  it("matches the schema and the schema serializer for many ids, repeats and unknown ids", async () => {
    const ids = ["sensor-001", "pump-101-flow", "ghost", "pump-101-state", "sensor-001", "tank-201"];
    const body = await check(srv.url, { elementIds: ids, ...lastHour() }, 200);
    expect(body.success).toBe(false);
    expect(body.results.map((r: any) => r.elementId)).toEqual(ids);
    expect(body.results[0].result.values.length).toBeGreaterThan(10);
    expect(body.results[2].responseDetail.status).toBe(404);
  });

  it("matches them for compositions at every maxDepth", async () => {
    for (const maxDepth of [0, 1, 2, 3]) {
      const body = await check(srv.url, { elementIds: ["pump-101", "site-1"], maxDepth, ...lastHour() }, 200);
      const result = body.results[0].result;
      expect(result.isComposition).toBe(true);
      if (maxDepth === 1) expect(result.components).toBeUndefined();
      else expect(Object.keys(result.components).length).toBeGreaterThan(0);
      if (maxDepth === 0 || maxDepth === 3) {
        const nested = result.components["pump-101-measurements"].components;
        expect(nested["pump-101-bearing-temperature"].values.length).toBeGreaterThan(0);
      }
    }
  });

  it("matches them for a range without data (GoodNoData entries, components included)", async () => {
    const body = await check(
      srv.url,
      {
        elementIds: ["sensor-001", "pump-101"],
        maxDepth: 0,
        startTime: "2001-01-01T00:00:00.000001Z",
        endTime: "2001-01-02T00:00:00Z",
      },
      200,
    );
    const noData = [{ value: null, quality: "GoodNoData", timestamp: "2001-01-01T00:00:00.000001Z" }];
    expect(body.results[0].result).toEqual({ isComposition: false, values: noData });
    expect(body.results[1].result.components["pump-101-state"].values).toEqual(noData);
  });

  describe("beyond the server's limits", () => {
    let limited: TestServer;
    beforeAll(async () => {
      limited = await startTestServer({ I3XD_MAX_HISTORY_POINTS: "5", I3XD_MAX_COMPOSITION_DEPTH: "1" });
    });
    afterAll(async () => {
      await limited?.close();
    });

    it("matches them for a 206 with truncated series, a depth cut and a 404", async () => {
      const request = { elementIds: ["sensor-001", "pump-101", "ghost"], maxDepth: 0, ...lastHour() };
      const body = await check(limited.url, request, 206);
      expect(body.results[0].result.values).toHaveLength(5);
      expect(body.responseDetail.status).toBe(206);
      expect(body.responseDetail.detail).toContain("sensor-001");
      expect(body.responseDetail.detail).toContain("pump-101-measurements");
    });
  });

  it("keeps the response schema in the OpenAPI document", async () => {
    const doc = (await (await fetch(`${srv.url}/v1/openapi.json`)).json()) as any;
    const ok = doc.paths["/v1/objects/history"].post.responses["200"].content["application/json"].schema;
    const item = ok.properties.results.items.properties;
    expect(Object.keys(item.result.properties)).toEqual(["isComposition", "values", "components"]);
    expect(Object.keys(item.result.properties.values.items.properties)).toEqual([
      "value",
      "quality",
      "timestamp",
    ]);
  });
});
