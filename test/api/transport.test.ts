// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, getRaw, gunzipJson, postJson } from "../helpers/http.js";
import { startTestServer, type TestServer, useTestServer } from "../helpers/server.js";

const srv = useTestServer();

describe("gzip", () => {
  it("compresses even a small JSON answer when the client accepts gzip", async () => {
    const res = await getRaw(`${srv.url}/v1/info`, { "accept-encoding": "gzip" });
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(gunzipJson(res.body).success).toBe(true);
  });

  it("compresses bulk POST answers and error envelopes too", async () => {
    const body = JSON.stringify({ elementIds: ["pump-101"], maxDepth: 0 });
    const res = await getRaw(
      `${srv.url}/v1/objects/value`,
      { "accept-encoding": "gzip, deflate, br", "content-type": "application/json" },
      "POST",
      body,
    );
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(gunzipJson(res.body).results[0].elementId).toBe("pump-101");
    const bad = await getRaw(
      `${srv.url}/v1/objects/value`,
      { "accept-encoding": "gzip", "content-type": "application/json" },
      "POST",
      "{}",
    );
    expect(bad.status).toBe(400);
    expect(bad.headers["content-encoding"]).toBe("gzip");
    expect(gunzipJson(bad.body).success).toBe(false);
  });

  it("sends plain JSON when the client does not ask for gzip", async () => {
    const res = await getRaw(`${srv.url}/v1/namespaces`);
    expect(res.headers["content-encoding"]).toBeUndefined();
    expect(JSON.parse(res.body.toString("utf8")).success).toBe(true);
  });
});

describe("API description", () => {
  it("serves the OpenAPI document built from the route schemas", async () => {
    const res = await getJson(srv.url, "/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\./);
    const paths = Object.keys(res.body.paths);
    for (const p of [
      "/v1/info",
      "/v1/namespaces",
      "/v1/objecttypes",
      "/v1/objecttypes/query",
      "/v1/relationshiptypes",
      "/v1/relationshiptypes/query",
      "/v1/objects",
      "/v1/objects/list",
      "/v1/objects/related",
      "/v1/objects/value",
      "/v1/objects/history",
    ]) {
      expect(paths).toContain(p);
    }
    expect(paths.some((p) => p.includes("_test"))).toBe(false);
    const value = res.body.paths["/v1/objects/value"].post;
    expect(value.requestBody.content["application/json"].schema.required).toContain("elementIds");
    expect(Object.keys(value.responses)).toEqual(expect.arrayContaining(["200", "206"]));
  });

  it("serves Swagger UI at /docs", async () => {
    const res = await fetch(`${srv.url}/docs`, { redirect: "follow" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toContain("swagger");
  });
});

describe("request handling", () => {
  it("does not expose the fault switch unless it is enabled", async () => {
    const res = await postJson(srv.url, "/v1/_test/fault", {});
    expect(res.status).toBe(404);
  });

  it("accepts a JSON content type with parameters and requests without Accept", async () => {
    const res = await fetch(`${srv.url}/v1/objects/list`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify({ elementIds: ["pump-101"] }),
    });
    expect(res.status).toBe(200);
  });

  it("rejects a body over the size limit with a 413 envelope", async () => {
    const ids = "x".repeat(srv.server.services.config.bodyLimit + 10);
    const res = await postJson(srv.url, "/v1/objects/list", { elementIds: [ids] });
    expect(res.status).toBe(413);
    expect(res.body.success).toBe(false);
    expect(res.body.responseDetail.status).toBe(413);
  });
});

describe("test fault switch", () => {
  let faulty: TestServer;
  beforeAll(async () => {
    faulty = await startTestServer({ I3XD_TEST_FAULTS: "1", I3XD_DEMO: "false" });
  });
  afterAll(async () => {
    await faulty?.close();
  });

  it("answers 500 through the normal error envelope", async () => {
    const res = await postJson(faulty.url, "/v1/_test/fault", {});
    expect(res.status).toBe(500);
    expect(res.body).toEqual({
      success: false,
      responseDetail: { title: "Internal Server Error", status: 500, detail: expect.any(String) },
    });
    // The server keeps serving afterwards.
    expect((await getJson(faulty.url, "/v1/info")).status).toBe(200);
  });

  it("is refused in production", async () => {
    await expect(startTestServer({ I3XD_TEST_FAULTS: "1", NODE_ENV: "production" })).rejects.toThrow(
      /I3XD_TEST_FAULTS/,
    );
  });
});
