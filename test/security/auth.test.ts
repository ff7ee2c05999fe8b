// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey, writeKeysFile } from "../../src/security/keys.js";
import { getJson, postJson } from "../helpers/http.js";
import { type LoggedServer, startLoggedServer } from "../helpers/logs.js";
import { makeTempDir } from "../helpers/server.js";
import { until } from "./child.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

const temp = makeTempDir("i3xd-auth-");
let server: LoggedServer;
let url: string;
let keys: Record<string, TestKey>;
let keysFile: string;
let envKey: TestKey;

beforeAll(async () => {
  ({ file: keysFile, keys } = await writeTestKeys(temp.dir, {
    reader: { scopes: ["read"] },
    writer: { scopes: ["write"] },
    admin: { scopes: ["read", "write"] },
    pumps: { scopes: ["read", "write"], prefixes: ["pump-101"] },
    revokable: { scopes: ["read"] },
  }));
  envKey = await createKey("from-env", ["read"]);
  server = await startLoggedServer({
    LOG_LEVEL: "info",
    I3XD_KEYS_FILE: keysFile,
    I3XD_API_KEYS: JSON.stringify([envKey.entry]),
  });
  url = server.url;
});
afterAll(async () => {
  await server?.close();
  temp.remove();
});

function expectFailure(res: { status: number; body: any }, status: number) {
  expect(res.status).toBe(status);
  expect(res.body.success).toBe(false);
  expect(res.body.responseDetail).toEqual({
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
}

const value = (elementIds: string[]) => ({ elementIds });
const write = (elementId: string, v: unknown) => ({
  updates: [{ elementId, value: { value: v, quality: "Good" } }],
});

describe("API keys", () => {
  it("answers 401 with WWW-Authenticate: Bearer without a key, with a malformed header and with a wrong key", async () => {
    const none = await getJson(url, "/v1/namespaces");
    expectFailure(none, 401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer realm="i3xd"$/);

    const basic = await getJson(url, "/v1/namespaces", { authorization: "Basic dXNlcjpwYXNz" });
    expectFailure(basic, 401);
    expect(basic.headers.get("www-authenticate")).toMatch(/^Bearer .*error="invalid_token"/);

    const { id } = keys.reader.entry;
    for (const token of [`i3xd_${id}_wrongsecret`, "i3xd_000000000000_x", "not-a-key", "x".repeat(5000)]) {
      const res = await getJson(url, "/v1/namespaces", bearer(token));
      expectFailure(res, 401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    }
    // Also for unknown paths: without a key nothing reveals which routes exist.
    expectFailure(await getJson(url, "/v1/no-such-thing"), 401);
    expectFailure(await getJson(url, "/v1/no-such-thing", bearer(keys.reader)), 404);
  });

  it("keeps /v1/info, the health probes and the API description open", async () => {
    expect((await getJson(url, "/v1/info")).status).toBe(200);
    expect((await getJson(url, "/health/live")).status).toBe(200);
    expect((await getJson(url, "/health/ready")).status).toBe(200);
    const api = await getJson(url, "/v1/openapi.json");
    expect(api.status).toBe(200);
    // The API description says so too: bearer keys everywhere, except /v1/info.
    expect(api.body.components.securitySchemes.apiKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(api.body.security).toEqual([{ apiKey: [] }]);
    expect(api.body.paths["/v1/info"].get.security).toEqual([]);
    expect((await fetch(`${url}/docs/`)).status).toBe(200);
  });

  it("lets read keys read and not write, write keys write and not read (403 in the envelope)", async () => {
    const read = await postJson(url, "/v1/objects/value", value(["pump-101"]), {
      headers: bearer(keys.reader),
    });
    expect(read.status).toBe(200);
    expect(read.body.results[0].success).toBe(true);
    expect((await getJson(url, "/v1/objects", bearer(keys.reader))).status).toBe(200);

    const denied = await postJson(url, "/v1/objects/value", write("sensor-001", 21.5), {
      method: "PUT",
      headers: bearer(keys.reader),
    });
    expectFailure(denied, 403);
    expect(denied.headers.get("www-authenticate")).toContain('error="insufficient_scope", scope="write"');
    expect(denied.body.responseDetail.detail).toContain("reader");

    const written = await postJson(url, "/v1/objects/value", write("sensor-001", 21.5), {
      method: "PUT",
      headers: bearer(keys.writer),
    });
    expect(written.status).toBe(200);
    expect(written.body.success).toBe(true);
    expectFailure(
      await postJson(url, "/v1/objects/value", value(["sensor-001"]), { headers: bearer(keys.writer) }),
      403,
    );
    expectFailure(await getJson(url, "/v1/namespaces", bearer(keys.writer)), 403);
    expectFailure(
      await postJson(url, "/v1/subscriptions", { clientId: "w" }, { headers: bearer(keys.writer) }),
      403,
    );

    const both = await postJson(url, "/v1/objects/value", value(["sensor-001"]), {
      headers: bearer(keys.admin),
    });
    expect(both.body.results[0].result.value).toBe(21.5);
    const history = await postJson(
      url,
      "/v1/objects/history",
      {
        updates: [
          {
            elementId: "sensor-001",
            value: { value: 20, quality: "Good", timestamp: "2026-01-01T00:00:00Z" },
          },
        ],
      },
      { method: "PUT", headers: bearer(keys.admin) },
    );
    expect(history.status).toBe(200);
  });

  it("accepts hashed keys from I3XD_API_KEYS next to the keys file", async () => {
    const res = await getJson(url, "/v1/namespaces", bearer(envKey));
    expect(res.status).toBe(200);
  });

  it("stores only salted hashes: the keys file holds no key", () => {
    const text = readFileSync(keysFile, "utf8");
    for (const k of Object.values(keys)) {
      expect(text).not.toContain(k.token);
      // The secret is base64url and may itself contain "_": it is everything after the id.
      const secret = k.token.slice(k.token.indexOf("_", "i3xd_".length) + 1);
      expect(secret.length).toBeGreaterThanOrEqual(40);
      expect(text).not.toContain(secret);
      expect(k.entry.hash).toMatch(/^scrypt\$/);
    }
    // The same key hashed twice gives two different entries (salted).
    expect(keys.reader.entry.hash).not.toBe(keys.revokable.entry.hash);
  });

  it("puts the key's name into user_id of the request's log lines and never the key itself", async () => {
    const requestId = "auth-log-check-1";
    const again = "auth-log-check-2";
    await getJson(url, "/v1/namespaces", { ...bearer(keys.admin), "x-request-id": requestId });
    await getJson(url, "/v1/namespaces", { ...bearer(keys.admin), "x-request-id": again });
    const completed = await server.waitForLog(
      "the completed line",
      (l) => l.request_id === requestId && l.message === "Request completed",
    );
    expect(completed.user_id).toBe("admin");
    // Once the key is verified (cached), even the first line of a request knows the user.
    const started = await server.waitForLog(
      "the started line",
      (l) => l.request_id === again && l.message === "Request started",
    );
    expect(started.user_id).toBe("admin");
    expect(server.logText()).not.toContain(keys.admin.token);
  });

  it("keeps metrics free of key names (bounded labels)", async () => {
    const res = await fetch(`${url}/metrics`, { headers: bearer(keys.reader) });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain("entity_requests_total");
    for (const name of Object.keys(keys)) expect(text).not.toMatch(new RegExp(`"${name}"`));
    expect(text).not.toMatch(/\buser(?:_id|_name)?="/);
  });

  it("requires a key for /metrics when keys are enforced and no metrics token is set", async () => {
    expectFailure(await getJson(url, "/metrics"), 401);
  });
});

describe("element-id prefixes", () => {
  it("answers a 403 item for each id outside the key's prefixes, the others normally", async () => {
    const res = await postJson(
      url,
      "/v1/objects/value",
      value(["pump-101", "tank-201", "pump-101-flow", "tank-201"]),
      {
        headers: bearer(keys.pumps),
      },
    );
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results.map((r: any) => [r.elementId, r.success])).toEqual([
      ["pump-101", true],
      ["tank-201", false],
      ["pump-101-flow", true],
      ["tank-201", false],
    ]);
    expect(res.body.results[1].responseDetail).toEqual({
      title: "Forbidden",
      status: 403,
      detail: expect.stringContaining("tank-201"),
    });
    expect(res.body.results[0].result.quality).toBeDefined();
  });

  it("answers every item with 403 when no id is permitted, and keeps other data untouched", async () => {
    const before = await postJson(url, "/v1/objects/value", value(["tank-201"]), {
      headers: bearer(keys.admin),
    });
    const res = await postJson(
      url,
      "/v1/objects/value",
      { updates: [{ elementId: "tank-201", value: { value: { level: 1 } } }] },
      {
        method: "PUT",
        headers: bearer(keys.pumps),
      },
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: false,
      results: [
        { success: false, elementId: "tank-201", responseDetail: expect.objectContaining({ status: 403 }) },
      ],
    });
    const after = await postJson(url, "/v1/objects/value", value(["tank-201"]), {
      headers: bearer(keys.admin),
    });
    expect(after.body).toEqual(before.body);
  });

  it("applies to writes per item", async () => {
    const res = await postJson(
      url,
      "/v1/objects/value",
      {
        updates: [
          { elementId: "sensor-001", value: { value: 1 } },
          { elementId: "pump-101-flow", value: { value: 12.5 } },
        ],
      },
      { method: "PUT", headers: bearer(keys.pumps) },
    );
    expect(res.body.results.map((r: any) => [r.elementId, r.success, r.responseDetail?.status])).toEqual([
      ["sensor-001", false, 403],
      ["pump-101-flow", true, undefined],
    ]);
  });

  it("answers history per item: the denied id is a 403 item, not dropped", async () => {
    const res = await postJson(
      url,
      "/v1/objects/history",
      {
        elementIds: ["pump-101", "tank-201"],
        startTime: "2020-01-01T00:00:00Z",
        endTime: "2100-01-01T00:00:00Z",
      },
      { headers: bearer(keys.pumps) },
    );
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results.map((r: any) => [r.elementId, r.success, r.responseDetail?.status])).toEqual([
      ["pump-101", true, undefined],
      ["tank-201", false, 403],
    ]);
  });

  it("lists only permitted objects, and only permitted related objects", async () => {
    // An unrestricted key's listing first, twice: the one a restricted key gets must still be narrowed.
    for (let i = 0; i < 2; i++) {
      const whole = await getJson(url, "/v1/objects", bearer(keys.admin));
      expect(whole.body.result.some((o: any) => o.elementId === "tank-201")).toBe(true);
    }
    const all = await getJson(url, "/v1/objects", bearer(keys.pumps));
    const ids = all.body.result.map((o: any) => o.elementId);
    expect(ids.length).toBeGreaterThan(3);
    expect(ids.every((id: string) => id.startsWith("pump-101"))).toBe(true);
    const related = await postJson(url, "/v1/objects/related", value(["pump-101"]), {
      headers: bearer(keys.pumps),
    });
    const targets = related.body.results[0].result.map((e: any) => e.object.elementId);
    expect(targets.length).toBeGreaterThan(0);
    expect(targets.every((id: string) => id.startsWith("pump-101"))).toBe(true);
    const unrestricted = await postJson(url, "/v1/objects/related", value(["pump-101"]), {
      headers: bearer(keys.admin),
    });
    expect(unrestricted.body.results[0].result.some((e: any) => e.object.elementId === "area-pumping")).toBe(
      true,
    );
  });

  it("restricts subscription registration per item", async () => {
    const created = await postJson(
      url,
      "/v1/subscriptions",
      { clientId: "pumps-client" },
      { headers: bearer(keys.pumps) },
    );
    const { subscriptionId } = created.body.result;
    const reg = await postJson(
      url,
      "/v1/subscriptions/register",
      { clientId: "pumps-client", subscriptionId, elementIds: ["pump-101-flow", "sensor-002"] },
      { headers: bearer(keys.pumps) },
    );
    expect(reg.body.results.map((r: any) => [r.elementId, r.success])).toEqual([
      ["pump-101-flow", true],
      ["sensor-002", false],
    ]);
  });
});

describe("subscriptions per key", () => {
  it("keeps a subscription invisible to other keys even with the same clientId", async () => {
    const created = await postJson(
      url,
      "/v1/subscriptions",
      { clientId: "shared-client" },
      { headers: bearer(keys.admin) },
    );
    expect(created.status).toBe(200);
    expect(created.body.result.clientId).toBe("shared-client");
    const { subscriptionId } = created.body.result;
    const body = { clientId: "shared-client", subscriptionIds: [subscriptionId] };
    const own = await postJson(url, "/v1/subscriptions/list", body, { headers: bearer(keys.admin) });
    expect(own.body.results[0].success).toBe(true);
    const other = await postJson(url, "/v1/subscriptions/list", body, { headers: bearer(keys.reader) });
    expect(other.body.results[0].success).toBe(false);
    expect(other.body.results[0].responseDetail.status).toBe(404);
    const sync = await postJson(
      url,
      "/v1/subscriptions/sync",
      { clientId: "shared-client", subscriptionId },
      {
        headers: bearer(keys.reader),
      },
    );
    expectFailure(sync, 404);
  });

  it("still answers a blank clientId with 400", async () => {
    expectFailure(
      await postJson(url, "/v1/subscriptions", { clientId: "  " }, { headers: bearer(keys.admin) }),
      400,
    );
  });
});

describe("revocation and failed attempts", () => {
  it("stops accepting a key removed from the keys file, without a restart", async () => {
    expect((await getJson(url, "/v1/namespaces", bearer(keys.revokable))).status).toBe(200);
    const remaining = Object.entries(keys)
      .filter(([name]) => name !== "revokable")
      .map(([, k]) => k.entry);
    writeKeysFile(keysFile, { version: 1, keys: remaining });
    await until("the revoked key to be refused", async () =>
      (await getJson(url, "/v1/namespaces", bearer(keys.revokable))).status === 401 ? true : undefined,
    );
    expect((await getJson(url, "/v1/namespaces", bearer(keys.reader))).status).toBe(200);
  });

  it("slows down an address that keeps presenting wrong keys (429 with Retry-After), not verified keys", async () => {
    const { id } = keys.admin.entry;
    let last: Awaited<ReturnType<typeof getJson>> | undefined;
    for (let i = 0; i < 40; i++) {
      last = await getJson(url, "/v1/namespaces", bearer(`i3xd_${id}_guess${i}`));
      if (last.status === 429) break;
    }
    expect(last?.status).toBe(429);
    expectFailure(last as any, 429);
    expect(Number(last?.headers.get("retry-after"))).toBeGreaterThan(0);
    // A key verified before (since the last reload of the keys file) is still served from the cache.
    expect((await getJson(url, "/v1/namespaces", bearer(keys.reader))).status).toBe(200);
  });
});
