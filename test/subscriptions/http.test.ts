import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openSse } from "../helpers/sse.js";

// Subscriptions over the real HTTP interface: create/list/delete/register/unregister, sync and SSE, with
// values written through PUT /v1/objects/value (the one write path that notifies subscriptions).

const SENSOR = "sensor-001"; // tank temperature, a plain number
const FLOW = "pump-101-flow"; // a component of pump-101 (via pump-101-measurements)

let tick = 0;
/** A distinct, increasing timestamp per written point. */
function nextTimestamp(): string {
  tick++;
  return new Date(Date.UTC(2030, 0, 1) + tick).toISOString();
}

async function write(server: TestServer, points: [elementId: string, value: number][]) {
  const res = await postJson(
    `${server.url}/v1`,
    "/objects/value",
    {
      updates: points.map(([elementId, value]) => ({
        elementId,
        value: { value, quality: "Good", timestamp: nextTimestamp() },
      })),
    },
    { method: "PUT" },
  );
  expect(res.status).toBe(200);
  expect(res.body.success).toBe(true);
}

function api(server: TestServer) {
  const base = `${server.url}/v1`;
  return {
    post: (path: string, body: unknown) => postJson(base, path, body),
    create: async (clientId: string, displayName?: string) => {
      const res = await postJson(base, "/subscriptions", { clientId, displayName });
      expect(res.status).toBe(200);
      return res.body.result.subscriptionId as string;
    },
    register: (clientId: string, subscriptionId: string, elementIds: string[], maxDepth?: number) =>
      postJson(base, "/subscriptions/register", { clientId, subscriptionId, elementIds, maxDepth }),
    sync: (clientId: string, subscriptionId: string, lastSequenceNumber?: unknown) =>
      postJson(base, "/subscriptions/sync", { clientId, subscriptionId, lastSequenceNumber }),
    streamUrl: `${base}/subscriptions/stream`,
  };
}

/** One sample of an unlabelled metric from the server's own `/metrics`. */
async function metricValue(server: TestServer, name: string): Promise<number> {
  const res = await getJson(server.url, "/metrics");
  expect(res.status).toBe(200);
  const line = String(res.body)
    .split("\n")
    .find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} not exported`);
  return Number(line.slice(name.length + 1));
}

const values = (batches: { updates: { value: unknown }[] }[]) =>
  batches.flatMap((b) => b.updates.map((u) => u.value));

describe("subscriptions over HTTP", () => {
  let server: TestServer;
  let c: ReturnType<typeof api>;

  beforeAll(async () => {
    server = await startTestServer({ I3XD_MAX_SUBSCRIPTIONS_PER_CLIENT: "5" });
    c = api(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("creates a subscription with an unguessable id, and lists it", async () => {
    const res = await c.post("/subscriptions", { clientId: "client-a", displayName: "mine" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      result: {
        clientId: "client-a",
        subscriptionId: expect.stringMatching(/^[\w-]{32}$/),
        displayName: "mine",
      },
    });
    const id = res.body.result.subscriptionId;
    await c.register("client-a", id, [SENSOR]);
    const listed = await c.post("/subscriptions/list", {
      clientId: "client-a",
      subscriptionIds: [id, "nope"],
    });
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({
      success: false,
      results: [
        {
          success: true,
          subscriptionId: id,
          result: {
            subscriptionId: id,
            displayName: "mine",
            monitoredObjects: [{ elementId: SENSOR, maxDepth: 1 }],
          },
        },
        {
          success: false,
          subscriptionId: "nope",
          responseDetail: { title: "Not Found", status: 404, detail: "Subscription not found: nope" },
        },
      ],
    });
    const deleted = await c.post("/subscriptions/delete", {
      clientId: "client-a",
      subscriptionIds: [id, id],
    });
    expect(deleted.body.results.map((r: { success: boolean }) => r.success)).toEqual([true, false]);
    expect((await c.sync("client-a", id)).status).toBe(404);
  });

  it("runs the full sync life cycle", async () => {
    const id = await c.create("client-sync");
    const reg = await c.register("client-sync", id, [SENSOR, FLOW]);
    expect(reg.body).toEqual({
      success: true,
      results: [
        { success: true, elementId: SENSOR, result: null },
        { success: true, elementId: FLOW, result: null },
      ],
    });
    expect((await c.sync("client-sync", id)).body).toEqual({ success: true, result: [] });

    await write(server, [
      [SENSOR, 21.5],
      [FLOW, 80],
    ]);
    const first = await c.sync("client-sync", id);
    expect(first.status).toBe(200);
    expect(first.body.result).toHaveLength(1);
    expect(first.body.result[0].sequenceNumber).toBe(1);
    expect(first.body.result[0].updates).toEqual([
      { elementId: SENSOR, value: 21.5, quality: "Good", timestamp: expect.any(String) },
      { elementId: FLOW, value: 80, quality: "Good", timestamp: expect.any(String) },
    ]);

    await write(server, [[SENSOR, 22]]);
    const second = await c.sync("client-sync", id, 1);
    expect(second.body.result.map((b: { sequenceNumber: number }) => b.sequenceNumber)).toEqual([2]);
    expect(values(second.body.result)).toEqual([22]);

    // Not acknowledged yet: batch 2 comes again with the new batch 3.
    await write(server, [[FLOW, 81]]);
    const third = await c.sync("client-sync", id);
    expect(third.body.result.map((b: { sequenceNumber: number }) => b.sequenceNumber)).toEqual([2, 3]);

    await write(server, [[FLOW, 82]]);
    expect((await c.sync("client-sync", id, -1)).body).toEqual({ success: true, result: [] });
    expect((await c.sync("client-sync", id, 3)).body).toEqual({ success: true, result: [] });
  });

  it("rejects a lastSequenceNumber of the wrong type, and ignores an out-of-range one", async () => {
    const id = await c.create("client-ack");
    await c.register("client-ack", id, [SENSOR]);
    await write(server, [[SENSOR, 1]]);
    expect((await c.sync("client-ack", id)).body.result).toHaveLength(1);
    for (const bad of ["1", 1.5, true, {}]) {
      const res = await c.sync("client-ack", id, bad);
      expect(res.status).toBe(400);
      expect(res.body.success).toBe(false);
    }
    for (const ignored of [-7, 99, null]) {
      const res = await c.sync("client-ack", id, ignored);
      expect(res.status).toBe(200);
      expect(res.body.result.map((b: { sequenceNumber: number }) => b.sequenceNumber)).toEqual([1]);
    }
  });

  it("answers 404 for another client's subscription on every route", async () => {
    const id = await c.create("owner");
    const other = { clientId: "intruder", subscriptionId: id };
    for (const [path, body] of [
      ["/subscriptions/register", { ...other, elementIds: [SENSOR] }],
      ["/subscriptions/unregister", { ...other, elementIds: [SENSOR] }],
      ["/subscriptions/sync", other],
      ["/subscriptions/stream", other],
    ] as const) {
      const res = await c.post(path, body);
      expect(res.status, path).toBe(404);
      expect(res.body).toEqual({
        success: false,
        responseDetail: { title: "Not Found", status: 404, detail: `Subscription not found: ${id}` },
      });
    }
    for (const path of ["/subscriptions/list", "/subscriptions/delete"]) {
      const res = await c.post(path, { clientId: "intruder", subscriptionIds: [id] });
      expect(res.body.results[0]).toMatchObject({ success: false, responseDetail: { status: 404 } });
    }
    // Still there for its owner.
    expect((await c.sync("owner", id)).status).toBe(200);
  });

  it("answers 400 with the envelope when clientId is missing or not a non-empty string", async () => {
    const id = await c.create("client-400");
    const bodies: Record<string, Record<string, unknown>> = {
      "/subscriptions": {},
      "/subscriptions/list": { subscriptionIds: [id] },
      "/subscriptions/delete": { subscriptionIds: [id] },
      "/subscriptions/register": { subscriptionId: id, elementIds: [SENSOR] },
      "/subscriptions/unregister": { subscriptionId: id, elementIds: [SENSOR] },
      "/subscriptions/sync": { subscriptionId: id },
      "/subscriptions/stream": { subscriptionId: id },
    };
    for (const [path, body] of Object.entries(bodies)) {
      for (const clientId of [undefined, null, "", "   ", 42]) {
        const res = await c.post(path, { ...body, clientId });
        expect(res.status, `${path} ${JSON.stringify(clientId)}`).toBe(400);
        expect(res.body).toMatchObject({
          success: false,
          responseDetail: { title: "Bad Request", status: 400 },
        });
        expect(res.body.responseDetail.detail).toMatch(/clientId/);
      }
    }
    // None of those calls deleted or changed anything.
    const listed = await c.post("/subscriptions/list", { clientId: "client-400", subscriptionIds: [id] });
    expect(listed.body.success).toBe(true);
  });

  it("registers idempotently, with per-item 404s for unknown elements", async () => {
    const id = await c.create("client-reg");
    const first = await c.register("client-reg", id, [SENSOR, "no-such-element", SENSOR]);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      success: false,
      results: [
        { success: true, elementId: SENSOR, result: null },
        {
          success: false,
          elementId: "no-such-element",
          responseDetail: { title: "Not Found", status: 404, detail: "Element not found: no-such-element" },
        },
        { success: true, elementId: SENSOR, result: null },
      ],
    });
    const again = await c.register("client-reg", id, [SENSOR], 5);
    expect(again.body).toEqual({
      success: true,
      results: [{ success: true, elementId: SENSOR, result: null }],
    });
    const listed = await c.post("/subscriptions/list", { clientId: "client-reg", subscriptionIds: [id] });
    expect(listed.body.results[0].result.monitoredObjects).toEqual([{ elementId: SENSOR, maxDepth: 1 }]);

    // One write of the element gives exactly one update, however often it was registered.
    await write(server, [[SENSOR, 7]]);
    expect(values((await c.sync("client-reg", id)).body.result)).toEqual([7]);

    const unreg = await c.post("/subscriptions/unregister", {
      clientId: "client-reg",
      subscriptionId: id,
      elementIds: [SENSOR, "no-such-element"],
    });
    expect(unreg.body.results.map((r: { success: boolean }) => r.success)).toEqual([true, false]);
    await write(server, [[SENSOR, 8]]);
    // The queued update stays after unregister; the new one is not queued.
    expect(values((await c.sync("client-reg", id)).body.result)).toEqual([7]);
  });

  it("delivers component changes of a composition registered with maxDepth", async () => {
    const shallow = await c.create("client-depth");
    const deep = await c.create("client-depth");
    await c.register("client-depth", shallow, ["pump-101"], 1);
    const reg = await c.register("client-depth", deep, ["pump-101"], 0);
    expect(reg.status).toBe(200);
    await write(server, [[FLOW, 90]]);
    expect((await c.sync("client-depth", shallow)).body.result).toEqual([]);
    const synced = await c.sync("client-depth", deep);
    expect(synced.body.result[0].updates).toEqual([
      { elementId: FLOW, value: 90, quality: "Good", timestamp: expect.any(String) },
    ]);
  });

  it("streams queued updates first, then live ones, in order", async () => {
    const id = await c.create("client-sse");
    await c.register("client-sse", id, [SENSOR]);
    await write(server, [[SENSOR, 1]]);
    await write(server, [[SENSOR, 2]]);
    const stream = await openSse(c.streamUrl, { clientId: "client-sse", subscriptionId: id });
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(stream.headers["cache-control"]).toBe("no-cache");
    expect(stream.headers["x-accel-buffering"]).toBe("no");
    expect(stream.headers["content-encoding"]).toBeUndefined();
    expect(stream.headers["x-request-id"]).toMatch(/^[\w-]+$/);
    await stream.waitFor(() => stream.events.flat().length >= 2);

    // Sync is refused while the stream is open.
    const conflict = await c.sync("client-sse", id);
    expect(conflict.status).toBe(409);
    expect(conflict.body.success).toBe(false);

    await write(server, [[SENSOR, 3]]);
    await write(server, [
      [SENSOR, 4],
      [SENSOR, 5],
    ]);
    await stream.waitFor(() => stream.events.flat().length >= 5);
    const updates = stream.events.flat() as { elementId: string; value: number; quality: string }[];
    expect(updates.map((u) => u.value)).toEqual([1, 2, 3, 4, 5]);
    expect(updates[0]).toEqual({
      elementId: SENSOR,
      value: 1,
      quality: "Good",
      timestamp: expect.any(String),
    });
    expect(await metricValue(server, "sse_streams_open")).toBe(1);
    stream.close();
    expect(await stream.ended).toBe("error");
    // The disconnect frees the stream at once: sync works again.
    await stream.waitFor(() => server.services.subscriptions.stats().streams === 0);
    expect(await metricValue(server, "sse_streams_open")).toBe(0);
    expect((await c.sync("client-sse", id)).status).toBe(200);
  });

  it("does not compress the stream even when the client accepts gzip", async () => {
    const id = await c.create("client-gzip");
    const stream = await openSse(
      c.streamUrl,
      { clientId: "client-gzip", subscriptionId: id },
      { "accept-encoding": "gzip" },
    );
    expect(stream.status).toBe(200);
    expect(stream.headers["content-encoding"]).toBeUndefined();
    stream.close();
  });

  it("lets a second stream take over; the first ends normally", async () => {
    const id = await c.create("client-takeover");
    await c.register("client-takeover", id, [SENSOR]);
    const first = await openSse(c.streamUrl, { clientId: "client-takeover", subscriptionId: id });
    await write(server, [[SENSOR, 10]]);
    await first.waitFor(() => first.events.length > 0);
    const second = await openSse(c.streamUrl, { clientId: "client-takeover", subscriptionId: id });
    expect(second.status).toBe(200);
    expect(await first.ended).toBe("end");
    await write(server, [[SENSOR, 11]]);
    await second.waitFor(() => second.events.length > 0);
    expect(values([{ updates: second.events.flat() as { value: unknown }[] }])).toEqual([11]);
    expect(values([{ updates: first.events.flat() as { value: unknown }[] }])).toEqual([10]);
    second.close();
  });

  it("limits subscriptions per client with 429", async () => {
    for (let i = 0; i < 5; i++) await c.create("client-greedy");
    const res = await c.post("/subscriptions", { clientId: "client-greedy" });
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ success: false, responseDetail: { status: 429 } });
  });
});

describe("subscription queue overflow", () => {
  let server: TestServer;
  let c: ReturnType<typeof api>;

  beforeAll(async () => {
    server = await startTestServer({ I3XD_SUBSCRIPTION_QUEUE_MAX: "100" });
    c = api(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  const burst = () => Array.from({ length: 1000 }, (_, i): [string, number] => [SENSOR, i + 1]);

  it("keeps the newest 100 of a 1,000-update burst, counts 900 dropped and answers 206", async () => {
    const id = await c.create("client-burst");
    await c.register("client-burst", id, [SENSOR]);
    const droppedBefore = await metricValue(server, "subscription_dropped_updates_total");
    await write(server, burst());
    expect((await metricValue(server, "subscription_dropped_updates_total")) - droppedBefore).toBe(900);
    expect(await metricValue(server, "subscription_queued_updates")).toBe(100);

    const res = await c.sync("client-burst", id);
    expect(res.status).toBe(206);
    expect(res.body.success).toBe(true);
    expect(res.body.responseDetail).toMatchObject({
      title: "Updates dropped due to queue overflow",
      status: 206,
    });
    expect(res.body.responseDetail.detail).toMatch(/900 updates/);
    expect(res.body.result).toHaveLength(1);
    // The client never acknowledged anything: number 1 carried the lost updates.
    expect(res.body.result[0].sequenceNumber).toBe(2);
    expect(values(res.body.result)).toEqual(Array.from({ length: 100 }, (_, i) => 901 + i));

    const next = await c.sync("client-burst", id, 2);
    expect(next.status).toBe(200);
    expect(next.body.result).toEqual([]);
  });

  it("streams the newest 100 of a burst that arrived while no stream was open", async () => {
    const id = await c.create("client-burst-sse");
    await c.register("client-burst-sse", id, [SENSOR]);
    await write(server, burst());
    const stream = await openSse(c.streamUrl, { clientId: "client-burst-sse", subscriptionId: id });
    await stream.waitFor(() => stream.events.flat().length >= 100);
    const got = stream.events.flat() as { value: number }[];
    expect(got.map((u) => u.value)).toEqual(Array.from({ length: 100 }, (_, i) => 901 + i));
    stream.close();
  });
});

describe("subscription expiry and shutdown", () => {
  let server: TestServer;
  let c: ReturnType<typeof api>;

  beforeAll(async () => {
    server = await startTestServer({ I3XD_SUBSCRIPTION_TTL_SECONDS: "1", I3XD_SSE_HEARTBEAT_SECONDS: "1" });
    c = api(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("deletes a subscription nobody synced or streamed within the TTL", async () => {
    const idle = await c.create("client-ttl");
    const streamed = await c.create("client-ttl");
    const stream = await openSse(c.streamUrl, { clientId: "client-ttl", subscriptionId: streamed });
    await stream.waitFor(() => server.services.subscriptions.stats().subscriptions === 1, 15_000);
    const listed = await c.post("/subscriptions/list", {
      clientId: "client-ttl",
      subscriptionIds: [idle, streamed],
    });
    expect(listed.body.results.map((r: { success: boolean }) => r.success)).toEqual([false, true]);
    expect((await c.sync("client-ttl", idle)).status).toBe(404);
    // The open stream kept its subscription alive and carried keep-alive comments meanwhile.
    await stream.waitFor(() => stream.comments.includes("keep-alive"));
    expect(stream.events).toEqual([]);
    stream.close();
  });

  it("ends open streams normally when the server shuts down", async () => {
    const id = await c.create("client-shutdown");
    const stream = await openSse(c.streamUrl, { clientId: "client-shutdown", subscriptionId: id });
    expect(stream.status).toBe(200);
    await server.close();
    expect(await stream.ended).toBe("end");
  });
});
