// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { request as httpRequest } from "node:http";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

/**
 * Every route of the OpenAPI document × { running open, an unrestricted key, a key restricted to the
 * prefix `pump-101` }. Each request is made once to warm the caches, then again with identity and with gzip
 * encoding, and the raw bytes are checked: for the restricted key no element id outside its prefix appears
 * anywhere but in the 403 items for the ids the request itself named. Whatever fast path a route takes
 * (rendered bytes, Buffers, streams), its answer is checked here; a route without an entry fails the test.
 */

const PREFIX = "pump-101";
const IDS = ["pump-101", "tank-201", "pump-101-flow", "sensor-001"];
const CLIENT = "table-client";
/** A composition whose components are only partly permitted to the `measurements` key. */
const MEASUREMENTS = "pump-101-measurements";
const FLOW = "pump-101-flow";
const RANGE = { startTime: "2020-01-01T00:00:00Z", endTime: "2100-01-01T00:00:00Z" };

interface Context {
  subscriptionId: string;
}

interface Call {
  body?: unknown;
  query?: string;
  /** The element ids the request names, in the order its bulk results answer them. */
  ids?: readonly string[];
}

interface RouteCase {
  calls: (ctx: Context) => Call[];
  /** Its answer to an unrestricted caller names an element outside the prefix (so the check has teeth). */
  namesOthers?: boolean;
  /** A Server-Sent Events stream: read for a while, then closed. */
  stream?: boolean;
  /** Runs after the others (a stream blocks sync; delete ends the subscription). */
  late?: number;
}

const updates = (ids: readonly string[], history: boolean) =>
  ids.map((elementId, i) => ({
    elementId,
    value: {
      value: elementId === "pump-101-flow" ? 12.5 + i : null,
      quality: elementId === "pump-101-flow" ? "Good" : "GoodNoData",
      ...(history ? { timestamp: `2024-01-01T00:00:0${i}Z` } : {}),
    },
  }));

const TABLE: Record<string, RouteCase> = {
  "GET /v1/info": { calls: () => [{}] },
  "GET /v1/namespaces": { calls: () => [{}] },
  "GET /v1/objecttypes": { calls: () => [{}] },
  "POST /v1/objecttypes/query": { calls: () => [{ body: { elementIds: ["pump-type", "tank-type"] } }] },
  "GET /v1/relationshiptypes": { calls: () => [{}] },
  "POST /v1/relationshiptypes/query": {
    calls: () => [{ body: { elementIds: ["HasComponent", "SuppliesTo"] } }],
  },
  "GET /v1/objects": {
    namesOthers: true,
    calls: () => [
      {},
      { query: "?includeMetadata=true" },
      { query: "?root=true" },
      { query: "?typeElementId=pump-type&includeMetadata=true" },
    ],
  },
  "POST /v1/objects/list": {
    namesOthers: true,
    calls: () => [
      { body: { elementIds: IDS }, ids: IDS },
      { body: { elementIds: IDS, includeMetadata: true }, ids: IDS },
      { body: { elementIds: ["pump-101"], includeMetadata: true }, ids: ["pump-101"] },
    ],
  },
  "POST /v1/objects/related": {
    namesOthers: true,
    calls: () => [
      { body: { elementIds: IDS }, ids: IDS },
      { body: { elementIds: ["pump-101"], includeMetadata: true }, ids: ["pump-101"] },
    ],
  },
  "POST /v1/objects/value": {
    namesOthers: true,
    calls: () => [
      { body: { elementIds: IDS }, ids: IDS },
      { body: { elementIds: IDS, maxDepth: 0 }, ids: IDS },
    ],
  },
  "PUT /v1/objects/value": { calls: () => [{ body: { updates: updates(IDS, false) }, ids: IDS }] },
  "POST /v1/objects/history": {
    namesOthers: true,
    calls: () => [
      { body: { elementIds: IDS, ...RANGE }, ids: IDS },
      { body: { elementIds: IDS, ...RANGE, maxDepth: 0 }, ids: IDS },
    ],
  },
  "PUT /v1/objects/history": { calls: () => [{ body: { updates: updates(IDS, true) }, ids: IDS }] },
  "POST /v1/subscriptions": { calls: () => [{ body: { clientId: CLIENT } }] },
  "POST /v1/subscriptions/list": {
    namesOthers: true,
    calls: ({ subscriptionId }) => [{ body: { clientId: CLIENT, subscriptionIds: [subscriptionId] } }],
  },
  "POST /v1/subscriptions/register": {
    calls: ({ subscriptionId }) => [
      { body: { clientId: CLIENT, subscriptionId, elementIds: IDS, maxDepth: 0 }, ids: IDS },
    ],
  },
  "POST /v1/subscriptions/unregister": {
    calls: ({ subscriptionId }) => [
      {
        body: { clientId: CLIENT, subscriptionId, elementIds: ["sensor-001", "pump-101-state"] },
        ids: ["sensor-001", "pump-101-state"],
      },
    ],
  },
  "POST /v1/subscriptions/sync": {
    namesOthers: true,
    calls: ({ subscriptionId }) => [{ body: { clientId: CLIENT, subscriptionId } }],
  },
  "POST /v1/subscriptions/stream": {
    stream: true,
    late: 1,
    calls: ({ subscriptionId }) => [{ body: { clientId: CLIENT, subscriptionId } }],
  },
  "POST /v1/subscriptions/delete": {
    late: 2,
    calls: ({ subscriptionId }) => [{ body: { clientId: CLIENT, subscriptionIds: [subscriptionId] } }],
  },
};

interface Raw {
  status: number;
  encoding: string | undefined;
  text: string;
}

/** One request with node:http, so the bytes are the server's own (fetch would decode them). */
function raw(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: unknown,
  stream: boolean,
): Promise<Raw> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      const finish = () => {
        const bytes = Buffer.concat(chunks);
        const encoding = res.headers["content-encoding"];
        const text = (encoding === "gzip" ? gunzipSync(bytes) : bytes).toString("utf8");
        resolve({ status: res.statusCode ?? 0, encoding, text });
      };
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", finish);
      res.on("error", reject);
      // A stream never ends by itself: what it sent in its first moments (the queued updates) is enough.
      if (stream && res.statusCode === 200) {
        setTimeout(() => {
          res.removeAllListeners("end");
          req.destroy();
          finish();
        }, 400);
      }
    });
    req.on("error", reject);
    if (body !== undefined) req.end(JSON.stringify(body));
    else req.end();
  });
}

type Mode = "open" | "unrestricted" | "restricted";

const temp = makeTempDir("i3xd-access-");
let openServer: TestServer;
let keyServer: TestServer;
let keys: Record<string, TestKey>;
let routes: string[];
/** Every element id of the demo plant that does not start with the restricted key's prefix. */
let others: string[];

function serverOf(mode: Mode): TestServer {
  return mode === "open" ? openServer : keyServer;
}

function authOf(mode: Mode): Record<string, string> {
  if (mode === "open") return {};
  return bearer(mode === "restricted" ? keys.pumps : keys.admin);
}

beforeAll(async () => {
  ({ keys } = await writeTestKeys(temp.dir, {
    admin: { scopes: ["read", "write"] },
    pumps: { scopes: ["read", "write"], prefixes: [PREFIX] },
    measurements: { scopes: ["read"], prefixes: [MEASUREMENTS, FLOW] },
  }));
  [openServer, keyServer] = await Promise.all([
    startTestServer(),
    startTestServer({ I3XD_KEYS_FILE: `${temp.dir}/keys.json` }),
  ]);
  const doc: any = await (await fetch(`${openServer.url}/v1/openapi.json`)).json();
  routes = Object.entries<Record<string, unknown>>(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
  );
  const all: any = await (await fetch(`${openServer.url}/v1/objects`)).json();
  others = all.result.map((o: any) => o.elementId).filter((id: string) => !id.startsWith(PREFIX));
}, 60_000);

afterAll(async () => {
  await Promise.all([openServer?.close(), keyServer?.close()]);
  temp.remove();
});

/** The raw text with the 403 items for the ids the request named taken out, as the server wrote them. */
function withoutForbiddenItems(text: string, body: any): string {
  let rest = text;
  for (const item of body?.results ?? []) {
    if (item.success === false && item.responseDetail?.status === 403) {
      rest = rest.split(JSON.stringify(item)).join("");
    }
  }
  return rest;
}

async function exercise(mode: Mode): Promise<void> {
  const server = serverOf(mode);
  const auth = authOf(mode);
  const json = { "content-type": "application/json", accept: "application/json" };
  const created = await raw(
    server.url,
    "POST",
    "/v1/subscriptions",
    { ...json, ...auth },
    { clientId: CLIENT },
    false,
  );
  const ctx: Context = { subscriptionId: JSON.parse(created.text).result.subscriptionId };
  // Registered before the writes below, so sync and the stream have updates of every element to show.
  await raw(
    server.url,
    "POST",
    "/v1/subscriptions/register",
    { ...json, ...auth },
    { clientId: CLIENT, subscriptionId: ctx.subscriptionId, elementIds: IDS, maxDepth: 0 },
    false,
  );
  const writer = mode === "open" ? {} : bearer(keys.admin);
  await raw(
    server.url,
    "PUT",
    "/v1/objects/value",
    { ...json, ...writer },
    { updates: updates(IDS, false) },
    false,
  );

  const ordered = [...routes].sort((a, b) => (TABLE[a]?.late ?? 0) - (TABLE[b]?.late ?? 0));
  for (const route of ordered) {
    const entry = TABLE[route];
    const [method, path] = route.split(" ");
    let namedOthers = false;
    for (const call of entry.calls(ctx)) {
      const target = `${path}${call.query ?? ""}`;
      const send = (encoding: string, as = auth) =>
        raw(
          server.url,
          method,
          target,
          {
            ...(call.body === undefined ? { accept: "application/json" } : json),
            "accept-encoding": encoding,
            ...as,
          },
          call.body,
          entry.stream === true,
        );
      // Warms the caches, with the denied elements too: a fast path must not answer from them.
      if (mode === "restricted" && !entry.stream) await send("identity", bearer(keys.admin));
      await send("identity");
      for (const encoding of ["identity", "gzip"]) {
        const res = await send(encoding);
        const where = `${mode} ${route}${call.query ?? ""} (${encoding})`;
        expect(res.status, `${where}: ${res.text.slice(0, 300)}`).toBeLessThan(300);
        if (encoding === "gzip" && !entry.stream) expect(res.encoding, where).toBe("gzip");
        const body = entry.stream ? undefined : JSON.parse(res.text);
        if (call.ids !== undefined) {
          const results = body.results;
          expect(
            results.map((r: any) => r.elementId),
            where,
          ).toEqual(call.ids);
          call.ids.forEach((id, i) => {
            const forbidden = results[i].success === false && results[i].responseDetail.status === 403;
            expect(forbidden, `${where}: item ${id}`).toBe(mode === "restricted" && !id.startsWith(PREFIX));
          });
          if (mode === "restricted" && call.ids.some((id) => !id.startsWith(PREFIX)))
            expect(body.success, where).toBe(false);
        }
        const named = others.filter((id) => withoutForbiddenItems(res.text, body).includes(id));
        if (mode === "restricted") expect(named, `${where}: ${res.text.slice(0, 2000)}`).toEqual([]);
        if (named.length > 0) namedOthers = true;
      }
    }
    if (mode !== "restricted" && entry.namesOthers)
      expect(namedOthers, `${mode} ${route} names others`).toBe(true);
  }
}

describe("access per route", () => {
  it("has an entry for every route of the OpenAPI document, and no entry for a route that is gone", () => {
    expect(routes.length).toBeGreaterThan(15);
    expect(others).toContain("tank-201");
    expect(Object.keys(TABLE).sort()).toEqual([...routes].sort());
  });

  it.each<Mode>(["open", "unrestricted", "restricted"])(
    "answers every route %s, and a restricted key sees no element outside its prefix",
    async (mode) => {
      await exercise(mode);
    },
    120_000,
  );
});

describe("a key that may see a composition but only some of its components", () => {
  const post = async (path: string, body: unknown, key: TestKey) => {
    const res = await raw(
      keyServer.url,
      "POST",
      path,
      { "content-type": "application/json", ...bearer(key) },
      body,
      false,
    );
    expect(res.status, res.text).toBeLessThan(300);
    return { text: res.text, body: JSON.parse(res.text) };
  };
  /** Every element id in the text that the key may not see. */
  const deniedIn = (text: string) =>
    [...others, PREFIX, "pump-101-motor", "pump-101-state", "pump-101-bearing-temperature"].filter((id) =>
      new RegExp(`"${id}"`).test(text),
    );

  it("leaves the denied components out of values, history, metadata and subscription updates", async () => {
    const admin = keys.admin;
    const key = keys.measurements;
    const whole = await post("/v1/objects/value", { elementIds: [MEASUREMENTS], maxDepth: 0 }, admin);
    expect(Object.keys(whole.body.results[0].result.components).length).toBeGreaterThan(1);

    for (let i = 0; i < 2; i++) {
      const value = await post("/v1/objects/value", { elementIds: [MEASUREMENTS], maxDepth: 0 }, key);
      expect(Object.keys(value.body.results[0].result.components)).toEqual([FLOW]);
      expect(deniedIn(value.text)).toEqual([]);

      const history = await post(
        "/v1/objects/history",
        { elementIds: [MEASUREMENTS], ...RANGE, maxDepth: 0 },
        key,
      );
      expect(Object.keys(history.body.results[0].result.components)).toEqual([FLOW]);
      expect(deniedIn(history.text)).toEqual([]);

      const listed = await post(
        "/v1/objects/list",
        { elementIds: [MEASUREMENTS], includeMetadata: true },
        key,
      );
      const object = listed.body.results[0].result;
      expect(object.parentId).toBeNull();
      expect(object.metadata.relationships).toEqual({ HasChildren: [FLOW], HasComponent: [FLOW] });
      expect(deniedIn(listed.text)).toEqual([]);
    }

    const { subscriptionId } = (await post("/v1/subscriptions", { clientId: "partial" }, key)).body.result;
    await post(
      "/v1/subscriptions/register",
      { clientId: "partial", subscriptionId, elementIds: [MEASUREMENTS], maxDepth: 0 },
      key,
    );
    const write = await raw(
      keyServer.url,
      "PUT",
      "/v1/objects/value",
      { "content-type": "application/json", ...bearer(admin) },
      {
        updates: [
          { elementId: "pump-101-bearing-temperature", value: { value: 41.5 } },
          { elementId: FLOW, value: { value: 13.5 } },
        ],
      },
      false,
    );
    expect(JSON.parse(write.text).success).toBe(true);
    const sync = await post("/v1/subscriptions/sync", { clientId: "partial", subscriptionId }, key);
    const delivered = sync.body.result.flatMap((b: any) => b.updates.map((u: any) => u.elementId));
    expect(delivered).toEqual([FLOW]);
    expect(deniedIn(sync.text)).toEqual([]);
  });
});
