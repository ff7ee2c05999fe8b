// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { createHook } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../helpers/http.js";
import { type LoggedServer, startLoggedServer } from "../helpers/logs.js";
import { parseMetrics, sampleValue } from "../helpers/metrics.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

// Hardening under hostile load, over the real HTTP interface: unread compressed bodies, per-key and
// per-address shares of subscriptions and streams, key-shaped secrets in logs, key verification that takes
// the same path for unknown ids, and what Node's HTTP parser rejects. Loopback only; 127.0.0.2 and
// 127.0.0.3 stand in for other client addresses.

const temp = makeTempDir("i3xd-hardening-");
afterAll(() => temp.remove());

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A keep-alive connection that sends raw bytes and reads responses framed by Content-Length. */
function rawConnection(base: string, localAddress = "127.0.0.1") {
  const { port } = new URL(base);
  const socket = net.connect({ port: Number(port), host: "127.0.0.1", localAddress });
  socket.on("error", () => {});
  let buffer = Buffer.alloc(0);
  let closed = false;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  socket.on("data", (c: Buffer) => {
    buffer = Buffer.concat([buffer, c]);
    wake();
  });
  socket.on("close", () => {
    closed = true;
    wake();
  });
  const parse = (): RawResponse | undefined => {
    const end = buffer.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const [statusLine, ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    if (buffer.length < end + 4 + length) return undefined;
    const body = buffer.subarray(end + 4, end + 4 + length).toString("utf8");
    buffer = buffer.subarray(end + 4 + length);
    return { status: Number(statusLine.split(" ")[1]), headers, body };
  };
  return {
    socket,
    write: (data: string | Buffer) => socket.write(data),
    /** The next response; rejects when the connection closes first or after `deadlineMs` (a deadline). */
    async next(deadlineMs = 10_000): Promise<RawResponse> {
      const until = Date.now() + deadlineMs;
      for (;;) {
        const r = parse();
        if (r) return r;
        if (closed) throw new Error("connection closed before a response");
        const left = until - Date.now();
        if (left <= 0) throw new Error("no response before the deadline");
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    /** Bytes received after the last parsed response. */
    rest: () => buffer,
    close: () => socket.destroy(),
  };
}

/** A JSON request from a chosen local address (http.request; fetch cannot pick one). */
function requestFrom(
  localAddress: string,
  base: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; res: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(`${base}${path}`, {
      method: "POST",
      localAddress,
      agent: false,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(payload),
        ...headers,
      },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      if ((res.headers["content-type"] ?? "").startsWith("text/event-stream")) {
        resolve({ status: res.statusCode ?? 0, body: undefined, res });
        return;
      }
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, res }),
      );
    });
    req.end(payload);
  });
}

async function metric(base: string, name: string, labels: Record<string, string> = {}, headers = {}) {
  const res = await fetch(`${base}/metrics`, { headers });
  return sampleValue(parseMetrics(await res.text()), name, labels);
}

describe("running open (limits per client address)", () => {
  let server: LoggedServer;
  beforeAll(async () => {
    server = await startLoggedServer({
      LOG_LEVEL: "info",
      I3XD_MAX_SUBSCRIPTIONS_PER_KEY: "3",
      I3XD_TEST_FAULTS: "1",
    });
  });
  afterAll(async () => server?.close());

  it("drains a compressed body it answered without reading, so the keep-alive connection serves the next request", async () => {
    // 300 KB of base64 gzipped: far more than the decompressor buffers before it stops reading.
    const body = gzipSync(randomBytes(300_000).toString("base64"));
    const conn = rawConnection(server.url);
    try {
      conn.write(
        "PUT /v1/objects/value HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n" +
          `Content-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      conn.write(body);
      const first = await conn.next();
      expect(first.status).toBe(415);
      conn.write("GET /v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n");
      // Before the fix this waited for the 60 s request timeout (a 408).
      const second = await conn.next(10_000);
      expect(second.status).toBe(200);
      expect(JSON.parse(second.body).success).toBe(true);
    } finally {
      conn.close();
    }
  }, 30_000);

  it("counts subscriptions against the client address, whatever the clientId, and names the limit in the 429", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await postJson(server.url, "/v1/subscriptions", { clientId: `address-share-${i}` });
      expect(res.status).toBe(200);
    }
    const refused = await postJson(server.url, "/v1/subscriptions", { clientId: "address-share-new" });
    expect(refused.status).toBe(429);
    expect(refused.body.responseDetail.detail).toContain("I3XD_MAX_SUBSCRIPTIONS_PER_KEY");
    expect(refused.body.responseDetail.detail).toContain("client address");
    // Another address has its own share.
    const elsewhere = await requestFrom("127.0.0.2", server.url, "/v1/subscriptions", {
      clientId: "elsewhere",
    });
    expect(elsewhere.status).toBe(200);
    expect(await metric(server.url, "limit_rejections_total", { limit: "subscriptions_per_key" })).toBe(1);
  });

  it("never logs a key-shaped value, wherever it was sent, and replaces a key-shaped X-Request-ID", async () => {
    const secret = randomBytes(32).toString("base64url");
    const key = `i3xd_0123456789ab_${secret}`;
    const sent = [
      fetch(`${server.url}/v1/info?key=${key}`),
      fetch(`${server.url}/v1/info?bearer=${key}`),
      fetch(`${server.url}/v1/info?k=${key}&x=1`),
      fetch(`${server.url}/v1/objects/${key}`),
      fetch(`${server.url}/v1/info`, { headers: { "user-agent": `probe ${key}` } }),
    ];
    const withId = await fetch(`${server.url}/v1/info`, { headers: { "x-request-id": key } });
    await Promise.all(sent);
    expect(withId.status).toBe(200);
    expect(withId.headers.get("x-request-id")).not.toContain(secret);
    await server.waitForLog("the user-agent request", (l) => String(l.user_agent ?? "").startsWith("probe"));
    const text = server.logText();
    expect(text).not.toContain(secret);
    // The public id stays, so the line still says whose key leaked.
    expect(text).toContain("i3xd_0123456789ab_[REDACTED]");
  });

  it("answers a HEAD rejected by the parser without a body, and counts and logs parser rejections once per burst", async () => {
    const before431 = await metric(server.url, "http_parser_errors_total", { code: "431" });
    const before400 = await metric(server.url, "http_parser_errors_total", { code: "400" });
    const conn = rawConnection(server.url);
    conn.write(`HEAD /v1/info HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
    const head = await conn.next();
    expect(head.status).toBe(431);
    expect(head.headers["content-length"]).toBe("0");
    await new Promise((r) => conn.socket.once("close", r));
    expect(conn.rest().length).toBe(0);

    for (let i = 0; i < 20; i++) {
      const bad = rawConnection(server.url);
      bad.write("GARBAGE\r\n\r\n");
      expect((await bad.next()).status).toBe(400);
      bad.close();
    }
    expect(await metric(server.url, "http_parser_errors_total", { code: "431" })).toBe(before431 + 1);
    expect(await metric(server.url, "http_parser_errors_total", { code: "400" })).toBe(before400 + 20);
    await server.waitForLog(
      "a parser rejection",
      (l) => l.status_code === 400 && l.message.includes("rejected"),
    );
    const rejected = server.logLines().filter((l) => l.message === "HTTP request rejected before routing");
    // One full line per status and address, the rest summarized when the window ends.
    expect(rejected.filter((l) => l.status_code === 400)).toHaveLength(1);
  });

  it("logs the first of a burst of failures with its stack, then one summary instead of a line each", async () => {
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${server.url}/v1/_test/fault`, { method: "POST" });
      expect(res.status).toBe(500);
    }
    const failed = () => server.logLines().filter((l) => l.level === "ERROR");
    expect(failed().filter((l) => l.message === "Request failed")).toHaveLength(1);
    expect(failed()[0].exception).toContain("Fault injected");
    expect(failed()[0].exception).toContain("    at ");
    const deadline = Date.now() + 20_000;
    while (!failed().some((l) => l.suppressed !== undefined) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    const summary = failed().find((l) => l.suppressed !== undefined);
    expect(summary).toMatchObject({ suppressed: 29, error_type: "Error" });
    expect(summary?.exception).toBeUndefined();
  }, 40_000);
});

describe("with API keys (limits per key and per address, key verification)", () => {
  let server: TestServer;
  let keys: Record<string, TestKey>;
  beforeAll(async () => {
    const written = await writeTestKeys(temp.dir, {
      alice: { scopes: ["read", "write"] },
      bob: { scopes: ["read"] },
      carol: { scopes: ["read"] },
    });
    keys = written.keys;
    server = await startTestServer({
      I3XD_KEYS_FILE: written.file,
      I3XD_MAX_SUBSCRIPTIONS_PER_KEY: "3",
      I3XD_MAX_STREAMS_PER_ADDRESS: "1",
      I3XD_MAX_STREAMS: "2",
    });
  });
  afterAll(async () => server?.close());

  it("counts subscriptions per key: one key's clientIds cannot take another key's slots", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await postJson(
        server.url,
        "/v1/subscriptions",
        { clientId: `c${i}` },
        { headers: bearer(keys.alice) },
      );
      expect(res.status).toBe(200);
    }
    const refused = await postJson(
      server.url,
      "/v1/subscriptions",
      { clientId: "c9" },
      { headers: bearer(keys.alice) },
    );
    expect(refused.status).toBe(429);
    expect(refused.body.responseDetail.detail).toContain("per API key");
    const other = await postJson(
      server.url,
      "/v1/subscriptions",
      { clientId: "c9" },
      { headers: bearer(keys.bob) },
    );
    expect(other.status).toBe(200);
  });

  it("limits streams per address across keys, and per process as the last guard", async () => {
    const streamFor = async (key: TestKey, address: string) => {
      const created = await requestFrom(
        address,
        server.url,
        "/v1/subscriptions",
        { clientId: `s-${address}` },
        bearer(key),
      );
      expect(created.status).toBe(200);
      const { clientId, subscriptionId } = created.body.result;
      return requestFrom(
        address,
        server.url,
        "/v1/subscriptions/stream",
        { clientId, subscriptionId },
        bearer(key),
      );
    };
    const first = await streamFor(keys.bob, "127.0.0.1");
    expect(first.status).toBe(200);
    const sameAddress = await streamFor(keys.carol, "127.0.0.1");
    expect(sameAddress.status).toBe(429);
    expect(sameAddress.body.responseDetail.detail).toContain("I3XD_MAX_STREAMS_PER_ADDRESS");
    const second = await streamFor(keys.carol, "127.0.0.2");
    expect(second.status).toBe(200);
    const third = await streamFor(keys.bob, "127.0.0.3");
    expect(third.status).toBe(429);
    expect(third.body.responseDetail.detail).toContain("I3XD_MAX_STREAMS");
    first.res.destroy();
    second.res.destroy();
  });

  it("takes one scrypt for an unknown key id as for a wrong secret, and stops a burst before the thread pool", async () => {
    let scrypts = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === "SCRYPTREQUEST") scrypts++;
      },
    }).enable();
    try {
      const wrongSecret = `i3xd_${keys.bob.entry.id}_${randomBytes(32).toString("base64url")}`;
      const unknownId = `i3xd_ffffffffffff_${randomBytes(32).toString("base64url")}`;
      // The stand-in hash for unknown ids is made once; afterwards both failures cost one check each.
      await fetch(`${server.url}/v1/namespaces`, { headers: bearer(unknownId) });
      scrypts = 0;
      expect((await fetch(`${server.url}/v1/namespaces`, { headers: bearer(wrongSecret) })).status).toBe(401);
      expect(scrypts).toBe(1);
      scrypts = 0;
      expect((await fetch(`${server.url}/v1/namespaces`, { headers: bearer(unknownId) })).status).toBe(401);
      expect(scrypts).toBe(1);

      // 60 bad keys at once from one address (127.0.0.3 has not failed yet): the per-address limit of 30
      // failures holds even while the checks are still running.
      scrypts = 0;
      const statuses = await Promise.all(
        Array.from(
          { length: 60 },
          () =>
            new Promise<number>((resolve, reject) => {
              const req = http.request(`${server.url}/v1/namespaces`, {
                localAddress: "127.0.0.3",
                agent: false,
                headers: bearer(`i3xd_eeeeeeeeeeee_${randomBytes(32).toString("base64url")}`),
              });
              req.on("error", reject);
              req.on("response", (res) => {
                res.resume();
                resolve(res.statusCode ?? 0);
              });
              req.end();
            }),
        ),
      );
      expect(statuses.filter((s) => s === 401)).toHaveLength(30);
      expect(statuses.filter((s) => s === 429)).toHaveLength(30);
      expect(scrypts).toBe(30);
    } finally {
      hook.disable();
    }
    // A valid key from elsewhere still gets in.
    expect((await fetch(`${server.url}/v1/namespaces`, { headers: bearer(keys.bob) })).status).toBe(200);
  }, 60_000);
});

describe("subscription queues bounded in bytes, stalled streams closed", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      I3XD_SUBSCRIPTION_QUEUE_MAX_BYTES: "64k",
      I3XD_SUBSCRIPTION_QUEUES_MAX_BYTES: "100k",
      I3XD_SSE_STALL_TIMEOUT: "1s",
    });
  });
  afterAll(async () => server?.close());

  // Of the demo plant's UnknownType (any object), so values may be as large as a test needs.
  const ELEMENT = "plc-01";
  let written = 0;
  /** Writes `count` string values of `size` characters in one request. */
  async function writeLarge(count: number, size: number) {
    const updates = Array.from({ length: count }, () => {
      written++;
      const ts = new Date(Date.UTC(2031, 0, 1) + written * 1000).toISOString();
      return {
        elementId: ELEMENT,
        value: { value: { seq: written, blob: "x".repeat(size) }, quality: "Good", timestamp: ts },
      };
    });
    const res = await postJson(server.url, "/v1/objects/value", { updates }, { method: "PUT" });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
  }

  async function subscribe(clientId: string) {
    const created = await postJson(server.url, "/v1/subscriptions", { clientId });
    const { subscriptionId } = created.body.result;
    const reg = await postJson(server.url, "/v1/subscriptions/register", {
      clientId,
      subscriptionId,
      elementIds: [ELEMENT],
    });
    expect(reg.status).toBe(200);
    return subscriptionId as string;
  }

  const queuedBytes = (batches: any[]) =>
    batches.flatMap((b) => b.updates).reduce((n: number, u: any) => n + JSON.stringify(u).length, 0);

  it("drops the oldest updates beyond a subscription's byte bound and the process's, and says so", async () => {
    const a = await subscribe("bytes-a");
    const b = await subscribe("bytes-b");
    // 10 updates of ~20 KB each: 200 KB offered to each queue, which may hold 64 KiB, and 100 KiB together.
    await writeLarge(10, 20_000);
    const syncA = await postJson(server.url, "/v1/subscriptions/sync", {
      clientId: "bytes-a",
      subscriptionId: a,
    });
    const syncB = await postJson(server.url, "/v1/subscriptions/sync", {
      clientId: "bytes-b",
      subscriptionId: b,
    });
    expect(syncA.status).toBe(206);
    expect(syncA.body.responseDetail.title).toBe("Updates dropped due to queue overflow");
    const bytesA = queuedBytes(syncA.body.result);
    const bytesB = queuedBytes(syncB.body.result);
    expect(bytesA).toBeLessThanOrEqual(64 * 1024);
    expect(bytesA + bytesB).toBeLessThanOrEqual(100 * 1024);
    // The newest survive: the last value written is the last one queued.
    const last = syncA.body.result.at(-1).updates.at(-1);
    expect(last.value.seq).toBe(written);
    expect(await metric(server.url, "subscription_queued_bytes")).toBeLessThanOrEqual(100 * 1024);
    await postJson(server.url, "/v1/subscriptions/delete", { clientId: "bytes-a", subscriptionIds: [a] });
    await postJson(server.url, "/v1/subscriptions/delete", { clientId: "bytes-b", subscriptionIds: [b] });
  });

  it("closes a stream whose client stopped reading and counts it", async () => {
    const stalledBefore = await metric(server.url, "sse_streams_closed_total", { reason: "stalled" });
    const id = await subscribe("stalled");
    const payload = JSON.stringify({ clientId: "stalled", subscriptionId: id });
    const conn = rawConnection(server.url);
    conn.write(
      "POST /v1/subscriptions/stream HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
        `Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
    );
    // Read nothing from now on: the kernel's buffers fill, then the server's writes stop draining.
    conn.socket.pause();
    const deadline = Date.now() + 90_000;
    let closed = stalledBefore;
    while (closed === stalledBefore && Date.now() < deadline) {
      // 3 MB a round, each update under the queue's 64 KiB bound (a larger one would be dropped unqueued).
      await writeLarge(50, 60_000);
      closed = await metric(server.url, "sse_streams_closed_total", { reason: "stalled" });
    }
    expect(closed).toBe(stalledBefore + 1);
    expect(await metric(server.url, "sse_streams_open")).toBe(0);
    conn.close();
  }, 120_000);
});
