// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { ConfigError } from "../../src/config-vars.js";
import { getRaw } from "../helpers/http.js";
import { corsRejections } from "../helpers/metrics.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { openSse } from "../helpers/sse.js";
import { killChildren, runCli } from "./child.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

// CORS (I3XD_CORS_ORIGINS) over real HTTP: preflights for every /v1 route, the headers of answers to
// allowed and disallowed origins, the routes that stay closed, the start-up rules. The browser's side of
// it (what a page may actually read) is test/security/cors-browser.test.ts.

const EXPLORER = "http://localhost:5173";
const DASHBOARD = "https://dashboard.example.com";
const ALLOWED_HEADERS = ["authorization", "content-type", "content-encoding", "x-request-id", "traceparent"];

const temp = makeTempDir("i3xd-cors-");
let server: TestServer;
let keys: Record<string, TestKey>;
let keysFile: string;

beforeAll(async () => {
  ({ file: keysFile, keys } = await writeTestKeys(temp.dir, {
    reader: { scopes: ["read"] },
    writer: { scopes: ["read", "write"] },
  }));
  server = await startTestServer({
    I3XD_KEYS_FILE: keysFile,
    // Spaces and commas both separate; the trailing slash is normalised away.
    I3XD_CORS_ORIGINS: `${EXPLORER}, ${DASHBOARD}/`,
  });
});
afterAll(async () => {
  killChildren();
  await server?.close();
  temp.remove();
});

type RawResponse = Awaited<ReturnType<typeof getRaw>>;

const preflight = (base: string, path: string, origin: string, method: string) =>
  getRaw(
    `${base}${path}`,
    {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": ALLOWED_HEADERS.join(","),
    },
    "OPTIONS",
  );

const corsHeaders = (res: RawResponse) =>
  Object.keys(res.headers).filter((name) => name.startsWith("access-control-"));

const list = (header: string | string[] | undefined) =>
  String(header ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");

/** Every /v1 route with its methods, from the API description, so a new route is covered as it comes. */
async function v1Routes(base: string): Promise<Array<[string, string]>> {
  const doc = JSON.parse((await getRaw(`${base}/v1/openapi.json`)).body.toString("utf8"));
  const routes: Array<[string, string]> = [["GET", "/v1/openapi.json"]];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
    if (!path.startsWith("/v1/")) continue;
    for (const method of Object.keys(ops)) {
      if (method === "parameters") continue;
      routes.push([method.toUpperCase(), path.replace(/\{[^}]+\}/g, "x")]);
    }
  }
  return routes;
}

describe("I3XD_CORS_ORIGINS with keys enforced", () => {
  it("answers the preflight of every /v1 route with 204, without a key, listing methods, headers and max-age", async () => {
    const routes = await v1Routes(server.url);
    // The i3X interface: exploratory, query, update and subscribe methods.
    expect(routes.length).toBeGreaterThanOrEqual(20);
    for (const [method, path] of routes) {
      for (const origin of [EXPLORER, DASHBOARD]) {
        const res = await preflight(server.url, path, origin, method);
        const where = `${method} ${path} from ${origin}`;
        expect(res.status, where).toBe(204);
        expect(res.body.length, where).toBe(0);
        expect(res.headers["access-control-allow-origin"], where).toBe(origin);
        expect(list(res.headers["access-control-allow-methods"]), where).toEqual(["get", "post", "put"]);
        expect(list(res.headers["access-control-allow-methods"]), where).toContain(method.toLowerCase());
        expect(list(res.headers["access-control-allow-headers"]).sort(), where).toEqual(
          [...ALLOWED_HEADERS].sort(),
        );
        expect(res.headers["access-control-max-age"], where).toBe("600");
        expect(list(res.headers.vary), where).toContain("origin");
        expect(res.headers["access-control-allow-credentials"], where).toBeUndefined();
        expect(res.headers["x-request-id"], where).toBeTruthy();
      }
    }
  });

  it("marks answers to an allowed origin, errors included, and exposes X-Request-ID and Retry-After", async () => {
    const read = await getRaw(`${server.url}/v1/namespaces`, { origin: EXPLORER, ...bearer(keys.reader) });
    const noKey = await getRaw(`${server.url}/v1/namespaces`, { origin: EXPLORER });
    const wrongScope = await getRaw(
      `${server.url}/v1/objects/value`,
      { origin: DASHBOARD, "content-type": "application/json", ...bearer(keys.reader) },
      "PUT",
      JSON.stringify({ updates: [] }),
    );
    expect([read.status, noKey.status, wrongScope.status]).toEqual([200, 401, 403]);
    // A page can read why its call failed only when the error answer carries the header too.
    for (const [res, origin] of [
      [read, EXPLORER],
      [noKey, EXPLORER],
      [wrongScope, DASHBOARD],
    ] as const) {
      expect(res.headers["access-control-allow-origin"]).toBe(origin);
      expect(list(res.headers["access-control-expose-headers"]).sort()).toEqual([
        "retry-after",
        "x-request-id",
      ]);
      expect(list(res.headers.vary)).toContain("origin");
      expect(res.headers["access-control-allow-credentials"]).toBeUndefined();
    }
    expect(JSON.parse(noKey.body.toString("utf8")).responseDetail.status).toBe(401);
  });

  it("keeps the origin's headers on an SSE stream", async () => {
    const created = await getRaw(
      `${server.url}/v1/subscriptions`,
      { origin: EXPLORER, "content-type": "application/json", ...bearer(keys.reader) },
      "POST",
      JSON.stringify({ clientId: "cors" }),
    );
    const { subscriptionId } = JSON.parse(created.body.toString("utf8")).result;
    const stream = await openSse(
      `${server.url}/v1/subscriptions/stream`,
      { clientId: "cors", subscriptionId },
      { origin: EXPLORER, ...bearer(keys.reader) },
    );
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
      expect(stream.headers["access-control-allow-origin"]).toBe(EXPLORER);
      expect(list(stream.headers["access-control-expose-headers"])).toContain("x-request-id");
    } finally {
      stream.close();
    }
  });

  it("gives a disallowed origin no CORS headers and counts its preflights and requests", async () => {
    const before = await corsRejections(server.url, bearer(keys.reader));
    const lookalikes = [
      "http://localhost:5174",
      "https://localhost:5173",
      "http://localhost:5173.evil.example",
      "https://evil.example",
      "null",
    ];
    for (const origin of lookalikes) {
      const pre = await preflight(server.url, "/v1/objects/value", origin, "POST");
      expect(corsHeaders(pre), origin).toEqual([]);
      // Not answered as a preflight: it goes on to the key check like any request.
      expect(pre.status, origin).toBe(401);
      const res = await getRaw(`${server.url}/v1/namespaces`, { origin, ...bearer(keys.reader) });
      // The server answers (a client outside a browser may send any Origin); the browser withholds it.
      expect(res.status, origin).toBe(200);
      expect(corsHeaders(res), origin).toEqual([]);
    }
    const after = await corsRejections(server.url, bearer(keys.reader));
    expect(after.preflight - before.preflight).toBe(lookalikes.length);
    expect(after.request - before.request).toBe(lookalikes.length);
  });

  it("leaves same-origin and non-browser requests alone and does not count them", async () => {
    const before = await corsRejections(server.url, bearer(keys.reader));
    const own = new URL(server.url).origin;
    const same = await getRaw(
      `${server.url}/v1/objects/value`,
      { origin: own, "content-type": "application/json", ...bearer(keys.reader) },
      "POST",
      JSON.stringify({ elementIds: ["no-such-element"] }),
    );
    const plain = await getRaw(`${server.url}/v1/namespaces`, bearer(keys.reader));
    expect([same.status, plain.status]).toEqual([200, 200]);
    expect(corsHeaders(same)).toEqual([]);
    expect(corsHeaders(plain)).toEqual([]);
    expect(await corsRejections(server.url, bearer(keys.reader))).toEqual(before);
  });

  it("answers an OPTIONS request that is no preflight like any other request, in the envelope", async () => {
    const res = await getRaw(`${server.url}/v1/namespaces`, { origin: EXPLORER }, "OPTIONS");
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body.toString("utf8"))).toMatchObject({ success: false });
    expect(corsHeaders(res)).toEqual([]);
    const keyed = await getRaw(
      `${server.url}/v1/namespaces`,
      { origin: EXPLORER, ...bearer(keys.reader) },
      "OPTIONS",
    );
    expect(keyed.status).toBe(404);
    expect(JSON.parse(keyed.body.toString("utf8")).responseDetail.status).toBe(404);
  });

  it("keeps /metrics, the health probes and /docs closed to every other origin", async () => {
    for (const path of ["/metrics", "/health/live", "/health/ready", "/docs", "/docs/static/index.html"]) {
      const pre = await preflight(server.url, path, EXPLORER, "GET");
      expect(pre.status, path).not.toBe(204);
      expect(corsHeaders(pre), path).toEqual([]);
      const res = await getRaw(`${server.url}${path}`, { origin: EXPLORER, ...bearer(keys.reader) });
      expect(res.status, path).toBeLessThan(400);
      expect(corsHeaders(res), path).toEqual([]);
    }
  });
});

describe("I3XD_CORS_ORIGINS and the other limits", () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({
      I3XD_KEYS_FILE: keysFile,
      I3XD_CORS_ORIGINS: EXPLORER,
      I3XD_RATE_LIMIT_MAX: "2",
      I3XD_RATE_LIMIT_WINDOW: "1m",
    });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it("lets a page read a 429's Retry-After; preflights use up no rate limit", async () => {
    for (let i = 0; i < 5; i++) {
      expect((await preflight(limited.url, "/v1/namespaces", EXPLORER, "GET")).status).toBe(204);
    }
    const statuses: number[] = [];
    let last: RawResponse | undefined;
    for (let i = 0; i < 3; i++) {
      last = await getRaw(`${limited.url}/v1/namespaces`, { origin: EXPLORER, ...bearer(keys.writer) });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(Number(last?.headers["retry-after"])).toBeGreaterThan(0);
    expect(last?.headers["access-control-allow-origin"]).toBe(EXPLORER);
    expect(list(last?.headers["access-control-expose-headers"])).toContain("retry-after");
  });
});

describe("CORS off and wildcard", () => {
  it("is off by default: a preflight is an unknown request and nothing carries CORS headers", async () => {
    const off = await startTestServer();
    try {
      const pre = await preflight(off.url, "/v1/objects/value", EXPLORER, "POST");
      expect(pre.status).toBe(404);
      expect(corsHeaders(pre)).toEqual([]);
      const res = await getRaw(`${off.url}/v1/namespaces`, { origin: EXPLORER });
      expect(res.status).toBe(200);
      expect(corsHeaders(res)).toEqual([]);
    } finally {
      await off.close();
    }
  });

  it("allows every origin with * while authentication is off", async () => {
    const open = await startTestServer({ I3XD_CORS_ORIGINS: "*" });
    try {
      const pre = await preflight(open.url, "/v1/objects/value", "https://anywhere.example", "POST");
      expect(pre.status).toBe(204);
      expect(pre.headers["access-control-allow-origin"]).toBe("*");
      const res = await getRaw(`${open.url}/v1/namespaces`, { origin: "https://anywhere.example" });
      expect(res.headers["access-control-allow-origin"]).toBe("*");
      expect(
        corsHeaders(await getRaw(`${open.url}/metrics`, { origin: "https://anywhere.example" })),
      ).toEqual([]);
    } finally {
      await open.close();
    }
  });

  it("refuses * at start-up while authentication is on, naming the variable", async () => {
    await expect(startTestServer({ I3XD_CORS_ORIGINS: "*", I3XD_KEYS_FILE: keysFile })).rejects.toThrow(
      /I3XD_CORS_ORIGINS=\* is allowed only while authentication is off.*API keys are configured/,
    );
    const run = runCli(["serve"], {
      I3XD_PORT: "0",
      I3XD_DATA_DIR: temp.dir,
      I3XD_KEYS_FILE: keysFile,
      I3XD_AUTH: "required",
      I3XD_CORS_ORIGINS: "*",
    });
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toContain("I3XD_CORS_ORIGINS=* is allowed only while authentication is off");
    expect(run.stderr()).toContain("I3XD_AUTH=required");
    expect(run.stdout()).not.toContain("i3xd started");
  }, 60_000);
});

describe("I3XD_CORS_ORIGINS values", () => {
  const origins = (value: string) => loadConfig({ I3XD_CORS_ORIGINS: value }).corsOrigins;

  it("takes origins as browsers send them, separated by commas or spaces", () => {
    expect(origins("http://localhost:5173")).toEqual(["http://localhost:5173"]);
    expect(
      origins(" HTTP://LocalHost:5173/ ,https://a.example:443  http://[::1]:8080,http://localhost:5173"),
    ).toEqual(["http://localhost:5173", "https://a.example", "http://[::1]:8080"]);
    expect(origins("*")).toBe("*");
    expect(loadConfig({}).corsOrigins).toBeUndefined();
  });

  it.each([
    "localhost:5173",
    "http://localhost:5173/app",
    "http://localhost:5173?x=1",
    "http://user@localhost:5173",
    "ftp://files.example",
    "null",
    "*, http://localhost:5173",
    " , ",
  ])("refuses %j with a message naming the variable", (value) => {
    expect(() => origins(value)).toThrow(ConfigError);
    expect(() => origins(value)).toThrow(/^I3XD_CORS_ORIGINS/);
  });
});
