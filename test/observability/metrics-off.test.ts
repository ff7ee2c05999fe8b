import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { ConfigError } from "../../src/config-vars.js";
import { entityRequests, requestDuration } from "../../src/observability/metrics.js";
import { getJson, postJson } from "../helpers/http.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ I3XD_METRICS: "false" });
});
afterAll(async () => {
  await server?.close();
});

describe("I3XD_METRICS=false", () => {
  it("has no scrape endpoint: GET /metrics is an unknown route", async () => {
    const res = await getJson(server.url, "/metrics");
    expect(res.status).toBe(404);
    expect(res.body.success).toBe(false);
    expect(res.body.responseDetail.status).toBe(404);
  });

  it("serves requests without recording request metrics", async () => {
    expect((await getJson(server.url, "/v1/info")).status).toBe(200);
    expect((await postJson(server.url, "/v1/objects/value", { elementIds: ["sensor-001"] })).status).toBe(
      200,
    );
    expect((await entityRequests.get()).values).toEqual([]);
    expect((await requestDuration.get()).values).toEqual([]);
  });

  it("is on unless switched off, and rejects values that are not booleans", () => {
    expect(loadConfig({}).metrics).toBe(true);
    expect(loadConfig({ I3XD_METRICS: "off" }).metrics).toBe(false);
    expect(() => loadConfig({ I3XD_METRICS: "sometimes" })).toThrow(ConfigError);
  });
});
