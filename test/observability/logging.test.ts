import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { type LoggedServer, type LogLine, startLoggedServer } from "../helpers/logs.js";

let server: LoggedServer;
let url: string;

beforeAll(async () => {
  server = await startLoggedServer({ I3XD_TEST_FAULTS: "1" });
  url = server.url;
});
afterAll(async () => {
  await server?.close();
});

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/** The lines from this request's `Request started` to its `Request completed`, in file order. */
async function requestLines(requestId: string): Promise<LogLine[]> {
  await server.waitForLog(
    `completion of ${requestId}`,
    (l) => l.message === "Request completed" && l.request_id === requestId,
  );
  const lines = server.logLines();
  const start = lines.findIndex((l) => l.message === "Request started" && l.request_id === requestId);
  const end = lines.findIndex((l) => l.message === "Request completed" && l.request_id === requestId);
  expect(start).toBeGreaterThanOrEqual(0);
  return lines.slice(start, end + 1);
}

/** Sends one request over a bare socket, so header values fetch would refuse can be sent as they are. */
function rawRequest(head: string): Promise<{ status: number; headers: Record<string, string> }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1", () => {
      socket.write(`${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, "latin1");
    });
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (c: string) => {
      data += c;
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const [statusLine, ...headerLines] = data.split("\r\n\r\n")[0].split("\r\n");
      const headers: Record<string, string> = {};
      for (const h of headerLines) {
        const i = h.indexOf(":");
        headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers });
    });
  });
}

describe("structured logs", () => {
  it("writes every line in the contract's shape", async () => {
    await getJson(url, "/v1/info");
    const lines = server.logLines();
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.timestamp).toMatch(TIMESTAMP);
      expect(LEVELS).toContain(line.level);
      expect(line.logger).toMatch(/^i3xd\.[a-z.-]+$/);
      expect(typeof line.message).toBe("string");
    }
    const started = lines.find((l) => l.logger === "i3xd.server" && l.message === "i3xd started");
    expect(started).toMatchObject({ level: "INFO", store: "sqlite", address: url });
    expect(started?.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(started?.features).toEqual(expect.arrayContaining(["demo-plant", "log-file"]));
  });

  it("puts the response's request id on every line of the request, including the store's", async () => {
    // An element not read before: the value cache misses and the store is read (logged at DEBUG).
    const res = await fetch(`${url}/v1/objects/value`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "obs-test.req:1" },
      body: JSON.stringify({ elementIds: ["tank-201"], maxDepth: 0 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("obs-test.req:1");

    const lines = await requestLines("obs-test.req:1");
    for (const line of lines) expect(line.request_id).toBe("obs-test.req:1");
    const started = lines[0];
    expect(started).toMatchObject({
      level: "INFO",
      logger: "i3xd.http",
      method: "POST",
      path: "/v1/objects/value",
    });
    expect(started.ip).toBe("127.0.0.1");
    expect(typeof started.user_agent).toBe("string");
    const store = lines.find((l) => l.logger === "i3xd.store");
    expect(store).toMatchObject({ level: "DEBUG", message: "Cache miss, reading store" });
    const completed = lines.at(-1) as LogLine;
    expect(completed).toMatchObject({ message: "Request completed", status_code: 200 });
    expect(completed.duration_ms).toBeGreaterThan(0);
    expect(completed.response_size).toBeGreaterThan(0);
  });

  it("generates a UUID v4 when there is no incoming id, and logs that one", async () => {
    const res = await postJson(url, "/v1/objects/list", { elementIds: ["pump-101"] });
    const id = res.headers.get("x-request-id") as string;
    expect(id).toMatch(UUID_V4);
    const lines = await requestLines(id);
    expect(lines.length).toBeGreaterThanOrEqual(2);
  });

  it("echoes the id on errors and 404s, and the error line carries it with the exception", async () => {
    const missing = await getJson(url, "/v1/definitely/not/here", { "x-request-id": "obs-404" });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toBe("obs-404");
    expect((await requestLines("obs-404")).at(-1)?.status_code).toBe(404);

    const bad = await postJson(
      url,
      "/v1/objects/value",
      { elementIds: 7 },
      { headers: { "x-request-id": "obs-400" } },
    );
    expect(bad.status).toBe(400);
    expect(bad.headers.get("x-request-id")).toBe("obs-400");

    const fault = await postJson(url, "/v1/_test/fault", {}, { headers: { "x-request-id": "obs-500" } });
    expect(fault.status).toBe(500);
    expect(fault.headers.get("x-request-id")).toBe("obs-500");
    const lines = await requestLines("obs-500");
    const error = lines.find((l) => l.level === "ERROR");
    expect(error?.request_id).toBe("obs-500");
    expect(typeof error?.exception).toBe("string");
    // Type, message and stack in one string.
    expect(error?.exception).toMatch(/^\w+: .+\n\s+at /);
  });

  it("logs health probes and scrapes at DEBUG only", async () => {
    const live = await getJson(url, "/health/live", { "x-request-id": "obs-probe" });
    expect(live.status).toBe(200);
    const lines = await requestLines("obs-probe");
    expect(lines.map((l) => l.level)).toEqual(["DEBUG", "DEBUG"]);
  });

  it("replaces unsafe incoming ids and never logs them", async () => {
    const unsafe = [
      "x".repeat(129),
      "has space",
      'quote"and}brace',
      "tab\there",
      "ctl\u0001char",
      "percent%0Anewline",
      "semi;colon",
      "ünïcode",
    ];
    for (const value of unsafe) {
      const res = await rawRequest(`GET /v1/info HTTP/1.1\r\nX-Request-ID: ${value}`);
      if (res.status === 400 && res.headers["x-request-id"] === undefined) continue; // refused by the HTTP parser
      expect(res.status).toBe(200);
      expect(res.headers["x-request-id"]).toMatch(UUID_V4);
      await requestLines(res.headers["x-request-id"]);
    }
    // An id cut at a line break by the client cannot smuggle a second header line into the log either.
    const split = await rawRequest("GET /v1/info HTTP/1.1\r\nX-Request-ID: first\r\n second-line-injected");
    expect([200, 400]).toContain(split.status);

    const text = server.logText();
    for (const value of unsafe) expect(text).not.toContain(value);
    expect(text).not.toContain("x".repeat(129));
    expect(text).not.toContain("second-line-injected");
    // Exactly 128 safe characters are kept.
    const longest = "a".repeat(128);
    const ok = await getJson(url, "/v1/info", { "x-request-id": longest });
    expect(ok.headers.get("x-request-id")).toBe(longest);
  });

  it("never writes an Authorization header or a token from a body, query or error", async () => {
    const secrets = {
      header: "SUPERSECRET-AUTH-6b1f",
      body: "SUPERSECRET-BODY-27ac",
      password: "SUPERSECRET-PASS-90de",
      query: "SUPERSECRET-QUERY-44e0",
      cookie: "SUPERSECRET-COOKIE-d3a1",
      malformed: "SUPERSECRET-MALFORMED-81bb",
    };
    const headers = { authorization: `Bearer ${secrets.header}`, cookie: `session=${secrets.cookie}` };
    const body = { elementIds: ["pump-101"], token: secrets.body, password: secrets.password };
    await postJson(url, "/v1/objects/value", body, { headers });
    await postJson(url, `/v1/objects/list?token=${secrets.query}&x=1`, body, { headers });
    await postJson(url, "/v1/objects/value", { elementIds: 3, token: secrets.body }, { headers });
    await postJson(url, "/v1/objects/value", `{"token":"${secrets.malformed}"`, { headers });
    await postJson(url, "/v1/_test/fault", body, {
      headers: { ...headers, "x-request-id": "obs-secret-500" },
    });
    await postJson(
      url,
      "/v1/objects/value",
      {
        updates: [
          {
            elementId: "sensor-001",
            value: { value: 1.5, quality: "Good", timestamp: new Date().toISOString() },
            token: secrets.body,
          },
        ],
      },
      { method: "PUT", headers: { ...headers, "x-request-id": "obs-secret-last" } },
    );
    await requestLines("obs-secret-last");

    const text = server.logText();
    for (const secret of Object.values(secrets)) expect(text).not.toContain(secret);
    expect(text).toContain("/v1/objects/list?token=[REDACTED]&x=1");
  });
});
