// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../helpers/http.js";
import { createTestDatabase, runPostgresTests, type TestDatabase } from "../helpers/pg.js";
import { openSse, type SseClient } from "../helpers/sse.js";
import { eventually, metric, type Replica, startReplica, stopReplicas } from "./cluster.js";

// Two i3xd processes on one PostgreSQL database, as behind a load balancer: what is written through one is
// read (past its cache) and received by subscribers (sync and SSE) on the other.

const enabled = await runPostgresTests();

const SENSOR = "sensor-001";
const FLOW = "pump-101-flow";

let tick = 0;
/** Distinct, increasing timestamps far from the demo's own. */
function stamp(): string {
  tick++;
  return new Date(Date.UTC(2031, 0, 1) + tick * 1000).toISOString();
}

async function write(r: Replica, updates: [string, number, string][], mode: "value" | "history" = "value") {
  const res = await postJson(
    r.url,
    `/v1/objects/${mode}`,
    {
      updates: updates.map(([elementId, value, timestamp]) => ({
        elementId,
        value: { value, quality: "Good", timestamp },
      })),
    },
    { method: "PUT" },
  );
  expect(res.status).toBe(200);
  expect(res.body.success).toBe(true);
}

async function readValue(r: Replica, elementId: string) {
  const res = await postJson(r.url, "/v1/objects/value", { elementIds: [elementId] });
  expect(res.status).toBe(200);
  return res.body.results[0].result;
}

describe.skipIf(!enabled)("two replicas on one PostgreSQL database", () => {
  let db: TestDatabase;
  let a: Replica;
  let b: Replica;

  beforeAll(async () => {
    db = await createTestDatabase();
    // A loads the demo plant; B finds it there and runs no simulator of its own.
    a = await startReplica("a", { I3XD_STORE_URL: db.url, I3XD_DEMO: "true" });
    b = await startReplica("b", { I3XD_STORE_URL: db.url, I3XD_DEMO: "false" });
  });
  afterAll(async () => {
    await stopReplicas();
    await db?.drop();
  });

  it("runs both on PostgreSQL with change notifications", async () => {
    for (const r of [a, b]) {
      const ready = await postJson(r.url, "/health/ready", undefined, { method: "GET" });
      expect(ready.body).toEqual({
        success: true,
        result: { status: "ready", store: "postgres", storage: "ok" },
      });
      const started = r.logs().find((l) => l.message === "i3xd started");
      expect(started?.features).toContain("change-notifications");
    }
    expect(b.logs().find((l) => l.message === "i3xd started")?.features).not.toContain("demo-plant");
  });

  it("a write on A is read on B past B's cache", async () => {
    const before = await readValue(b, SENSOR);
    // Read again: now it is B's cache that answers.
    const hits = (await metric(b.url, 'cache_hits_total{cache_type="value"}')) ?? 0;
    expect(await readValue(b, SENSOR)).toEqual(before);
    expect(await metric(b.url, 'cache_hits_total{cache_type="value"}')).toBeGreaterThan(hits);

    const ts = stamp();
    await write(a, [[SENSOR, 61.5, ts]]);
    // B's cache never expires by itself: seeing the value proves A's write invalidated it.
    const seen = await eventually("the new value on B", async () => {
      const v = await readValue(b, SENSOR);
      return v.value === 61.5 ? v : undefined;
    });
    expect(seen).toEqual({ value: 61.5, quality: "Good", timestamp: ts, isComposition: false });
    // And B keeps answering it (from its cache again).
    expect(await readValue(b, SENSOR)).toEqual(seen);
  });

  it("a subscriber on B receives A's writes by sync and by SSE, in order, once", async () => {
    const base = `${b.url}/v1`;
    const syncSub = (await postJson(base, "/subscriptions", { clientId: "sync-client" })).body.result
      .subscriptionId;
    await postJson(base, "/subscriptions/register", {
      clientId: "sync-client",
      subscriptionId: syncSub,
      elementIds: [SENSOR, FLOW],
    });
    const streamSub = (await postJson(base, "/subscriptions", { clientId: "sse-client" })).body.result
      .subscriptionId;
    await postJson(base, "/subscriptions/register", {
      clientId: "sse-client",
      subscriptionId: streamSub,
      elementIds: [SENSOR],
    });
    const sse: SseClient = await openSse(`${base}/subscriptions/stream`, {
      clientId: "sse-client",
      subscriptionId: streamSub,
    });
    try {
      expect(sse.status).toBe(200);
      const [t1, t2, t3] = [stamp(), stamp(), stamp()];
      await write(a, [
        [SENSOR, 70, t1],
        [FLOW, 85.5, t1],
      ]);
      await write(a, [[SENSOR, 71, t2]]);
      // A history point older than the current value is no change of the current value: not delivered.
      await write(a, [[SENSOR, 1, t1.replace("2031", "2029")]], "history");
      // A newer history point is.
      await write(a, [[SENSOR, 72, t3]], "history");

      const synced: any[] = [];
      await eventually("three sensor updates by sync", async () => {
        const res = await postJson(base, "/subscriptions/sync", {
          clientId: "sync-client",
          subscriptionId: syncSub,
        });
        expect(res.status).toBe(200);
        synced.splice(0, synced.length, ...res.body.result.flatMap((batch: any) => batch.updates));
        return synced.filter((u) => u.elementId === SENSOR).length >= 3 ? true : undefined;
      });
      expect(synced).toEqual([
        { elementId: SENSOR, value: 70, quality: "Good", timestamp: t1 },
        { elementId: FLOW, value: 85.5, quality: "Good", timestamp: t1 },
        { elementId: SENSOR, value: 71, quality: "Good", timestamp: t2 },
        { elementId: SENSOR, value: 72, quality: "Good", timestamp: t3 },
      ]);

      await sse.waitFor(() => sse.events.flat().length >= 3, 15_000);
      expect(sse.events.flat().map((u: any) => [u.value, u.timestamp])).toEqual([
        [70, t1],
        [71, t2],
        [72, t3],
      ]);
    } finally {
      sse.close();
    }
  });

  it("B's own writes reach its subscribers once (its own notifications are skipped) and A's cache", async () => {
    const base = `${b.url}/v1`;
    const sub = (await postJson(base, "/subscriptions", { clientId: "own-client" })).body.result
      .subscriptionId;
    await postJson(base, "/subscriptions/register", {
      clientId: "own-client",
      subscriptionId: sub,
      elementIds: [FLOW],
    });
    await readValue(a, FLOW); // cached on A
    const ts = stamp();
    await write(b, [[FLOW, 81.25, ts]]);
    await eventually("B's value on A", async () =>
      (await readValue(a, FLOW)).value === 81.25 ? true : undefined,
    );
    // A later write from A marks the end: everything before it has been delivered on B by then.
    const end = stamp();
    await write(a, [[FLOW, 81.5, end]]);
    const updates = await eventually("both updates on B", async () => {
      const res = await postJson(base, "/subscriptions/sync", {
        clientId: "own-client",
        subscriptionId: sub,
      });
      const all = res.body.result.flatMap((batch: any) => batch.updates);
      return all.some((u: any) => u.timestamp === end) ? all : undefined;
    });
    expect(updates.map((u: any) => [u.value, u.timestamp])).toEqual([
      [81.25, ts],
      [81.5, end],
    ]);
  });
});
