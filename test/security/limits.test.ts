// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import http from "node:http";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, type JsonResponse, postJson } from "../helpers/http.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { openSse, type SseClient } from "../helpers/sse.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

// Limits that protect the server, over the real HTTP interface: body size, bulk size, history points per
// response (206), header size, SSE streams per key, request rate per key, and the security headers.

const temp = makeTempDir("i3xd-limits-");
let server: TestServer;
let url: string;
let keys: Record<string, TestKey>;

beforeAll(async () => {
  const written = await writeTestKeys(temp.dir, {
    streamer: { scopes: ["read"] },
    other: { scopes: ["read"] },
    writer: { scopes: ["write"] },
  });
  keys = written.keys;
  server = await startTestServer({
    I3XD_KEYS_FILE: written.file,
    I3XD_BODY_LIMIT: "4096",
    I3XD_MAX_BULK_ITEMS: "5",
    I3XD_MAX_HISTORY_POINTS: "10",
    I3XD_MAX_HEADER_SIZE: "4096",
    I3XD_MAX_STREAMS_PER_KEY: "2",
  });
  url = server.url;
});
afterAll(async () => {
  await server?.close();
  temp.remove();
});

function expectEnvelope(res: { status: number; body: any }, status: number) {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({
    success: false,
    responseDetail: { title: expect.any(String), status, detail: expect.any(String) },
  });
}

const auth = () => ({ headers: bearer(keys.streamer) });

/** Sends raw bytes on a fresh connection and returns the status and parsed body of the answer. */
function raw(payload: string, base = url): Promise<{ status: number; body: any; head: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1");
    let text = "";
    socket.on("data", (c) => {
      text += c.toString("utf8");
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      const cut = text.indexOf("\r\n\r\n");
      if (cut < 0) return reject(new Error(`no HTTP answer: ${JSON.stringify(text)}`));
      const head = text.slice(0, cut);
      resolve({ status: Number(head.split(" ")[1]), body: JSON.parse(text.slice(cut + 4)), head });
    });
    socket.write(payload);
  });
}

describe("request limits", () => {
  it("answers a body over I3XD_BODY_LIMIT with 413 in the envelope, with or without Content-Length", async () => {
    const big = JSON.stringify({ elementIds: ["x".repeat(5000)] });
    expectEnvelope(await postJson(url, "/v1/objects/value", big, auth()), 413);
    const chunked = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = http.request(`${url}/v1/objects/value`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "transfer-encoding": "chunked",
          ...bearer(keys.streamer),
        },
      });
      req.on("response", (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      for (let i = 0; i < 10; i++) req.write(big.slice(i * 600, (i + 1) * 600));
      req.end();
    });
    expectEnvelope(chunked, 413);
  });

  it("answers more elementIds than I3XD_MAX_BULK_ITEMS with 400", async () => {
    const ids = ["pump-101", "tank-201", "sensor-001", "sensor-002", "plc-01", "site-1"];
    const res = await postJson(url, "/v1/objects/value", { elementIds: ids }, auth());
    expectEnvelope(res, 400);
    expect(res.body.responseDetail.detail).toMatch(/5/);
    const writes = await postJson(
      url,
      "/v1/objects/value",
      { updates: ids.map((elementId) => ({ elementId, value: { value: 1 } })) },
      { method: "PUT", headers: bearer(keys.writer) },
    );
    expectEnvelope(writes, 400);
    expect((await postJson(url, "/v1/objects/value", { elementIds: ids.slice(0, 5) }, auth())).status).toBe(
      200,
    );
  });

  it("cuts a history answer at I3XD_MAX_HISTORY_POINTS per element and says so with 206", async () => {
    const end = new Date();
    const start = new Date(end.getTime() - 24 * 3600_000);
    const res = await postJson(
      url,
      "/v1/objects/history",
      { elementIds: ["sensor-001"], startTime: start.toISOString(), endTime: end.toISOString() },
      auth(),
    );
    expect(res.status).toBe(206);
    expect(res.body.responseDetail).toMatchObject({ status: 206, title: expect.any(String) });
    expect(res.body.results[0].result.values).toHaveLength(10);
  });

  it("answers oversized request headers with 431 in the envelope", async () => {
    const res = await raw(
      `GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Filler: ${"a".repeat(8000)}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(res.body).toEqual({
      success: false,
      responseDetail: { title: expect.any(String), status: 431, detail: expect.any(String) },
    });
  });

  it("answers a malformed request line with 400 in the envelope", async () => {
    const res = await raw("BREW /v1/info?\u0000 HTTP/9.9\r\n\r\n");
    expect(res.status).toBe(400);
    expect(res.body.responseDetail.status).toBe(400);
  });
});

describe("hostile input", () => {
  it("refuses JSON nested deeper than I3XD_MAX_JSON_DEPTH before parsing it (400)", async () => {
    const nested = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const ok = await postJson(
      url,
      "/v1/objects/value",
      `{"elementIds":["pump-101"],"x":${nested(60)}}`,
      auth(),
    );
    expect(ok.status).toBe(200);
    const deep = await postJson(
      url,
      "/v1/objects/value",
      `{"elementIds":["pump-101"],"x":${nested(100_000)}}`,
      auth(),
    );
    expectEnvelope(deep, 413);
    const tooDeep = await postJson(
      url,
      "/v1/objects/value",
      `{"elementIds":["pump-101"],"x":${nested(65)}}`,
      auth(),
    );
    expectEnvelope(tooDeep, 400);
    expect(tooDeep.body.responseDetail.detail).toContain("nested deeper than 64");
    // Brackets inside strings do not nest, escaped quotes do not end a string, and an escaped backslash
    // before a quote does.
    const inString = await postJson(
      url,
      "/v1/objects/value",
      `{"elementIds":["pump-101"],"x":"${"[".repeat(70)}\\"${"{".repeat(70)}"}`,
      auth(),
    );
    expect(inString.status).toBe(200);
    const afterString = await postJson(
      url,
      "/v1/objects/value",
      `{"elementIds":["pump-101"],"x":["\\\\",${nested(65)}]}`,
      auth(),
    );
    expectEnvelope(afterString, 400);
    expect(afterString.body.responseDetail.detail).toContain("nested deeper than 64");
  });

  it("refuses prototype-pollution keys with 400", async () => {
    for (const body of [
      '{"__proto__":{"polluted":true},"elementIds":["pump-101"]}',
      '{"elementIds":["pump-101"],"constructor":{"prototype":{"polluted":true}}}',
    ]) {
      expectEnvelope(await postJson(url, "/v1/objects/value", body, auth()), 400);
    }
  });

  it("answers a URL that does not decode, and a request without Host, in the envelope", async () => {
    const badUrl = await raw("GET /v1/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(badUrl.status).toBe(400);
    expect(badUrl.body.responseDetail.status).toBe(400);
    const noHost = await raw("GET /v1/info HTTP/1.1\r\nConnection: close\r\n\r\n");
    expect(noHost.status).toBe(400);
    expect(noHost.body.responseDetail.detail).toContain("Host");
  });
});

describe("slow and compressed bodies", () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startTestServer({ I3XD_REQUEST_TIMEOUT_MS: "1000", I3XD_BODY_LIMIT: "8192" });
  });
  afterAll(async () => {
    await small?.close();
  });

  it("answers a request that is not sent in time with 408 in the envelope", async () => {
    const res = await raw(
      'POST /v1/objects/value HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"elementIds":',
      small.url,
    );
    expect(res.status).toBe(408);
    expect(res.body).toEqual({
      success: false,
      responseDetail: { title: "Request Timeout", status: 408, detail: expect.any(String) },
    });
  });

  it("counts the decompressed bytes of a gzip body against the body limit (413)", async () => {
    const bomb = gzipSync(Buffer.from(JSON.stringify({ elementIds: ["x".repeat(1_000_000)] })));
    expect(bomb.length).toBeLessThan(8192);
    const res = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = http.request(`${small.url}/v1/objects/value`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-encoding": "gzip",
          "content-length": bomb.length,
        },
      });
      req.on("response", (r) => {
        let text = "";
        r.on("data", (c) => {
          text += c;
        });
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.end(bomb);
    });
    expectEnvelope(res, 413);
  });
});

describe("SSE streams per key", () => {
  it("refuses a stream beyond I3XD_MAX_STREAMS_PER_KEY with 429, counted per key, freed when one closes", async () => {
    const subscribe = async (key: TestKey) => {
      const res = await postJson(url, "/v1/subscriptions", { clientId: "streams" }, { headers: bearer(key) });
      return res.body.result.subscriptionId as string;
    };
    const open = async (key: TestKey) =>
      openSse(
        `${url}/v1/subscriptions/stream`,
        { clientId: "streams", subscriptionId: await subscribe(key) },
        bearer(key),
      );
    const streams: SseClient[] = [];
    try {
      streams.push(await open(keys.streamer), await open(keys.streamer));
      expect(streams.map((s) => s.status)).toEqual([200, 200]);
      const third = await open(keys.streamer);
      expect(third.status).toBe(429);
      expect(third.errorBody).toMatchObject({ success: false, responseDetail: { status: 429 } });
      // Another key has its own allowance.
      const others = await open(keys.other);
      streams.push(others);
      expect(others.status).toBe(200);
      // Closing one frees a slot.
      streams[0].close();
      await streams[0].ended;
      let again: SseClient | undefined;
      for (let i = 0; i < 100 && again?.status !== 200; i++) {
        again = await open(keys.streamer);
        if (again.status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
      expect(again?.status).toBe(200);
      if (again) streams.push(again);
    } finally {
      for (const s of streams) s.close();
    }
  });
});

describe("security headers", () => {
  it("sends nosniff, no-store, DENY and a locked-down CSP on API answers, and no X-Powered-By", async () => {
    for (const res of [
      await getJson(url, "/v1/info"),
      await getJson(url, "/v1/namespaces"),
      await getJson(url, "/v1/namespaces", bearer(keys.streamer)),
      await getJson(url, "/v1/nowhere", bearer(keys.streamer)),
    ]) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
      expect(res.headers.get("x-powered-by")).toBeNull();
      expect(res.headers.get("strict-transport-security")).toBeNull();
    }
  });

  it("gives Swagger UI its own policy: no framing, no https upgrade on plain HTTP", async () => {
    const res = await fetch(`${url}/docs`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("swagger");
    const csp = String(res.headers.get("content-security-policy"));
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("upgrade-insecure-requests");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
  });
});

describe("rate limits", () => {
  let limited: TestServer;
  let open: TestServer;
  let lk: Record<string, TestKey>;
  beforeAll(async () => {
    const dir = makeTempDir("i3xd-rate-");
    const written = await writeTestKeys(dir.dir, { a: { scopes: ["read"] }, b: { scopes: ["read"] } });
    lk = written.keys;
    limited = await startTestServer({
      I3XD_KEYS_FILE: written.file,
      I3XD_RATE_LIMIT_MAX: "5",
      I3XD_RATE_LIMIT_WINDOW: "1m",
    });
    open = await startTestServer({ I3XD_RATE_LIMIT_MAX: "3", I3XD_RATE_LIMIT_WINDOW: "60s" });
  });
  afterAll(async () => {
    await limited?.close();
    await open?.close();
  });

  it("answers 429 with Retry-After in the envelope once a key used up its window; other keys go on", async () => {
    const statuses: number[] = [];
    let last: JsonResponse | undefined;
    for (let i = 0; i < 7; i++) {
      last = await getJson(limited.url, "/v1/namespaces", bearer(lk.a));
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expectEnvelope(last as any, 429);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(last?.body.responseDetail.detail).toContain("per minute per API key");
    expect((await getJson(limited.url, "/v1/namespaces", bearer(lk.b))).status).toBe(200);
    // Probes are never throttled.
    expect((await getJson(limited.url, "/health/live")).status).toBe(200);
  });

  it("limits per client address when the server runs open", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await getJson(open.url, "/v1/namespaces")).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
