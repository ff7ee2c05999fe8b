// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../helpers/http.js";
import {
  createTestDatabase,
  PG_ADMIN_URL,
  runPostgresTests,
  type TestDatabase,
  terminateConnections,
} from "../helpers/pg.js";
import { eventually, metric, type Replica, startReplica, stopReplicas } from "./cluster.js";

// The database connection going away under load: the replicas answer 503 and report not ready, never
// crash, and serve again by themselves when the database is back. Only this test's database is cut (its
// sessions terminated, then new ones refused); the shared PostgreSQL server keeps running.

const enabled = await runPostgresTests();

const SENSOR = "sensor-001";

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const historyBody = {
  elementIds: [SENSOR, "pump-101-flow"],
  startTime: new Date(Date.now() - 3_600_000).toISOString(),
  endTime: new Date().toISOString(),
};

let tick = 0;
function writeBody(value: number) {
  tick++;
  return {
    updates: [
      {
        elementId: SENSOR,
        value: { value, quality: "Good", timestamp: new Date(Date.UTC(2032, 0, 1) + tick).toISOString() },
      },
    ],
  };
}

/** Reads and writes from several loops until `stop` resolves; every status and failure is counted. */
async function load(url: string, stop: Promise<void>) {
  const statuses = new Map<number, number>();
  const bodies: any[] = [];
  let running = true;
  void stop.then(() => {
    running = false;
  });
  const worker = async (i: number) => {
    while (running) {
      const res =
        i % 2 === 0
          ? await postJson(url, "/v1/objects/history", historyBody)
          : await postJson(url, "/v1/objects/value", writeBody(i), { method: "PUT" });
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status !== 200) bodies.push(res.body);
    }
  };
  await Promise.all(Array.from({ length: 6 }, (_, i) => worker(i)));
  return { statuses, bodies };
}

describe.skipIf(!enabled)("losing the database connection", () => {
  let db: TestDatabase;
  let a: Replica;
  let b: Replica;

  beforeAll(async () => {
    db = await createTestDatabase();
    a = await startReplica("a", { I3XD_STORE_URL: db.url, I3XD_DEMO: "true", I3XD_PG_POOL_MAX: "4" });
    b = await startReplica("b", { I3XD_STORE_URL: db.url, I3XD_DEMO: "false", I3XD_PG_POOL_MAX: "4" });
  });
  afterAll(async () => {
    await admin(`ALTER DATABASE ${db?.name} ALLOW_CONNECTIONS true`).catch(() => {});
    await stopReplicas();
    await db?.drop();
  });

  it("answers 200 or 503 while its connections are cut again and again, and never crashes", async () => {
    let stopLoad: () => void = () => {};
    const stop = new Promise<void>((r) => {
      stopLoad = r;
    });
    const loaded = load(a.url, stop);
    let cuts = 0;
    for (let i = 0; i < 40; i++) {
      cuts += await terminateConnections(db.name);
      await new Promise((r) => setTimeout(r, 60));
    }
    stopLoad();
    const { statuses, bodies } = await loaded;
    expect(cuts).toBeGreaterThan(0);
    expect([...statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    for (const body of bodies)
      expect(body).toMatchObject({ success: false, responseDetail: { status: 503 } });
    expect(a.alive(), a.stderr()).toBe(true);
    expect(b.alive(), b.stderr()).toBe(true);
  });

  it("reports not ready and 503 while the database refuses connections, and recovers without a restart", async () => {
    const pids = [a.child.pid, b.child.pid];
    await admin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    await terminateConnections(db.name);

    for (const r of [a, b]) {
      const notReady = await eventually(`${r.name} not ready`, async () => {
        const res = await fetch(`${r.url}/health/ready`);
        return res.status === 503 ? ((await res.json()) as any) : undefined;
      });
      expect(notReady).toMatchObject({ success: false, responseDetail: { status: 503 } });
      expect(notReady.responseDetail.detail).toMatch(/^Store unreachable: PostgreSQL unavailable/);
      expect((await fetch(`${r.url}/health/live`)).status).toBe(200);
    }
    const read = await postJson(a.url, "/v1/objects/history", historyBody);
    expect(read.status).toBe(503);
    expect(read.body).toMatchObject({ success: false, responseDetail: { status: 503 } });
    const written = await postJson(a.url, "/v1/objects/value", writeBody(1), { method: "PUT" });
    expect(written.status).toBe(503);
    // What the DatabaseConnectionIssue alert reads: no open store connection, readiness answering 503.
    expect(await metric(a.url, "active_database_connections")).toBe(0);
    expect(
      await metric(a.url, 'entity_requests_total{method="GET",endpoint="/health/ready",status="503"}'),
    ).toBeGreaterThan(0);

    await admin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    for (const r of [a, b]) {
      await eventually(`${r.name} ready again`, async () =>
        (await fetch(`${r.url}/health/ready`)).status === 200 ? true : undefined,
      );
    }
    expect([a.child.pid, b.child.pid]).toEqual(pids);
    expect(a.alive(), a.stderr()).toBe(true);
    expect(b.alive(), b.stderr()).toBe(true);
    expect(await metric(a.url, "active_database_connections")).toBeGreaterThan(0);

    // Writes flow again, and B's change notifications are back: a subscriber there receives A's write.
    const base = `${b.url}/v1`;
    const sub = (await postJson(base, "/subscriptions", { clientId: "after-outage" })).body.result
      .subscriptionId;
    await postJson(base, "/subscriptions/register", {
      clientId: "after-outage",
      subscriptionId: sub,
      elementIds: [SENSOR],
    });
    await eventually("B listening again", async () => {
      const body = writeBody(55.5);
      const res = await postJson(a.url, "/v1/objects/value", body, { method: "PUT" });
      expect(res.status).toBe(200);
      const synced = await postJson(base, "/subscriptions/sync", {
        clientId: "after-outage",
        subscriptionId: sub,
      });
      const updates = synced.body.result.flatMap((batch: any) => batch.updates);
      return updates.some((u: any) => u.value === 55.5) ? true : undefined;
    });
    const value = await postJson(b.url, "/v1/objects/value", { elementIds: [SENSOR] });
    expect(value.body.results[0].result.value).toBe(55.5);
  });
});
