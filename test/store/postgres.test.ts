import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoPlantModel } from "../../src/demo/demo-plant.js";
import { DEMO_IDS, DEMO_VALUE_IDS } from "../../src/demo/plant-physics.js";
import { formatTimestampUs } from "../../src/domain/time.js";
import { rootLogger } from "../../src/observability/logger.js";
import { registry } from "../../src/observability/metrics.js";
import { PostgresStore } from "../../src/store/postgres/postgres.js";
import type { RetentionPolicy } from "../../src/store/retention.js";
import { StoreUnavailableError } from "../../src/store/store.js";
import {
  createTestDatabase,
  PG_ADMIN_URL,
  runPostgresTests,
  type TestDatabase,
  terminateConnections,
} from "../helpers/pg.js";
import { contractModel, describeStoreContract, readHistory } from "./contract.js";

// The same contract as SQLite, on a fresh database per case; then what only PostgreSQL has: migrations
// under a lock, partitions and retention, notifications, lost connections, pool metrics.

const enabled = await runPostgresTests();
// The lost-connection case makes the store log warnings, as it should; not into the test output.
rootLogger().level = "silent";

async function openPostgres(url: string, options: { retention?: RetentionPolicy } = {}) {
  const store = new PostgresStore({ connectionString: url, poolMax: 4, ...options });
  await store.init();
  return store;
}

const DAY_US = 86_400_000_000;
const HOUR_MS = 3_600_000;

function point(elementId: string, tsUs: number, value: unknown, quality: "Good" | "Bad" = "Good") {
  return { elementId, tsUs, vqt: { value, quality, timestamp: formatTimestampUs(tsUs) } };
}

describe.skipIf(!enabled)("PostgreSQL", () => {
  describeStoreContract("PostgreSQL", async () => {
    const db = await createTestDatabase();
    let store = await openPostgres(db.url);
    return {
      store,
      async reopen() {
        await store.close();
        store = await openPostgres(db.url);
        return store;
      },
      async cleanup() {
        await store.close();
        await db.drop();
      },
    };
  });

  describe("PostgreSQL store specifics", () => {
    let db: TestDatabase;
    // Short-lived connections: the lost-connection case cuts every session of the database.
    const admin = {
      query: <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string) => sql<R>(db.url, text),
    };

    beforeAll(async () => {
      db = await createTestDatabase();
    });
    afterAll(async () => {
      await db?.drop();
    });

    const partitions = async () =>
      (
        await admin.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'history'::regclass ORDER BY 1`,
        )
      ).rows.map((r) => r.name);

    it("migrates once even when several stores start together", async () => {
      const stores = Array.from({ length: 4 }, () => new PostgresStore({ connectionString: db.url }));
      await Promise.all(stores.map((s) => s.init()));
      const { rows } = await admin.query("SELECT version FROM schema_migrations");
      expect(rows.map((r) => r.version)).toEqual([1]);
      const names = await partitions();
      expect(names).toContain("history_default");
      // Yesterday to a week ahead, one table per UTC day.
      expect(names.filter((n) => /^history_p\d{8}$/.test(n))).toHaveLength(9);
      await Promise.all(stores.map((s) => s.close()));
    });

    it("keeps points outside the partitions in the default partition and moves them when their day gets one", async () => {
      const store = await openPostgres(db.url);
      try {
        await store.importModel(contractModel());
        const now = Date.now();
        const farFuture = (Math.floor((now * 1000) / DAY_US) + 30) * DAY_US + 1_000_000;
        const farPast = Date.UTC(2001, 0, 1) * 1000;
        await store.writePoints(
          [point("pump-temp", farPast, 1), point("pump-temp", farFuture, 2)],
          "history",
        );
        const inDefault = await admin.query(
          `SELECT ts_us FROM history_default WHERE ts_us IN (${farPast}, ${farFuture}) ORDER BY ts_us`,
        );
        expect(inDefault.rows.map((r) => Number(r.ts_us))).toEqual([farPast, farFuture]);
        // Thirty days later the server creates that day's partition: the waiting point moves into it.
        const result = await store.maintainHistory(now + 30 * 24 * HOUR_MS);
        const day = new Date(farFuture / 1000).toISOString().slice(0, 10).replaceAll("-", "");
        expect(result.created).toContain(`history_p${day}`);
        const moved = await admin.query(`SELECT ts_us FROM history_p${day}`);
        expect(moved.rows.map((r) => Number(r.ts_us))).toEqual([farFuture]);
        const all = { startUs: 0, endUs: Number.MAX_SAFE_INTEGER, limitPerElement: 100 };
        const values = (await readHistory(store, ["pump-temp"], all))
          .get("pump-temp")
          ?.points.map((p) => p.value);
        expect(values).toEqual([1, 39, 39.5, 40.5, 2]);
      } finally {
        await store.close();
      }
    });

    it("drops whole partitions and purges the default partition beyond the retention", async () => {
      const store = await openPostgres(db.url, {
        retention: { defaultMs: 2 * 24 * HOUR_MS, byType: new Map() },
      });
      try {
        const before = await partitions();
        const now = Date.now();
        // Ten days on: everything older than eight days ago is beyond the retention of two days.
        const later = now + 10 * 24 * HOUR_MS;
        const result = await store.maintainHistory(later);
        const cutoffUs = (later - 2 * 24 * HOUR_MS) * 1000;
        expect(result.dropped.length).toBeGreaterThan(0);
        for (const name of result.dropped) expect(before).toContain(name);
        // Opening the store already purged the default partition (the 2001 point) with today's cutoff.
        const old = await admin.query("SELECT count(*)::int AS n FROM history_default WHERE ts_us < 1e15");
        expect(old.rows[0].n).toBe(0);
        const remaining = await admin.query("SELECT min(ts_us) AS oldest FROM history");
        expect(Number(remaining.rows[0].oldest)).toBeGreaterThanOrEqual(cutoffUs - DAY_US);
        const after = await partitions();
        for (const name of result.dropped) expect(after).not.toContain(name);
      } finally {
        await store.close();
      }
    });

    it("deletes in batches what a type's own period or the default no longer keeps, never current values", async () => {
      const now = Date.now();
      const store = await openPostgres(db.url, {
        retention: { defaultMs: HOUR_MS, byType: new Map([["temperature-type", 3 * HOUR_MS]]) },
      });
      try {
        await store.importModel(demoPlantModel(new Date(now)));
        const rows = async () =>
          (await admin.query("SELECT count(*)::int AS n FROM history")).rows[0].n as number;
        const before = await rows();
        const result = await store.maintainHistory(now);
        // Before about 03:00 UTC a whole day partition is beyond every period and is dropped instead of
        // deleted from, so the rows removed are counted in the table, and the batched delete must have run.
        expect(before - (await rows())).toBeGreaterThan(30_000);
        expect(result.deleted).toBeGreaterThan(0);
        const oldest = async (id: string) =>
          Number(
            (await admin.query(`SELECT min(ts_us) AS t FROM history WHERE element_id = '${id}'`)).rows[0].t,
          );
        const temperature = await oldest(DEMO_IDS.bearingTemperature);
        expect(temperature).toBeGreaterThanOrEqual((now - 3 * HOUR_MS) * 1000);
        expect(temperature).toBeLessThan((now - 2.9 * HOUR_MS) * 1000);
        expect(await oldest(DEMO_IDS.flow)).toBeGreaterThanOrEqual((now - HOUR_MS) * 1000);
        expect((await store.getCurrentValues(DEMO_VALUE_IDS)).size).toBe(DEMO_VALUE_IDS.length);
      } finally {
        await store.close();
      }
    });

    it("notifies committed writes with the element ids and timestamps, tagged with the writer", async () => {
      const store = await openPostgres(db.url);
      const listener = new pg.Client({ connectionString: db.url });
      listener.on("error", () => {});
      await listener.connect();
      const payloads: string[] = [];
      listener.on("notification", (m) => payloads.push(m.payload ?? ""));
      await listener.query("LISTEN i3xd_changes");
      try {
        await store.importModel(contractModel());
        const ts = Date.UTC(2030, 0, 1) * 1000;
        await store.writePoints([point("pump-temp", ts, 1), point("pump-temp", ts + 1, 2)], "current");
        // A history point older than the current value changes nothing current: nothing to announce.
        await store.writePoints([point("pump-temp", ts - 5, 0)], "history");
        // Many long ids: the announcement is split into payloads below NOTIFY's 8000-byte limit.
        const many = Array.from({ length: 400 }, (_, i) => point(`${"x".repeat(60)}-${i}`, ts, i));
        await expect(store.writePoints(many, "current")).resolves.toEqual(many);
        // All of them: the split announcement arrives as several notifications.
        const idsIn = (ps: string[]) =>
          ps.flatMap((p) => JSON.parse(p).c ?? []).filter((v: unknown) => typeof v === "string").length;
        await until(() => payloads.length >= 4 && idsIn(payloads.slice(2)) >= 400);
        const decoded = payloads.map((p) => JSON.parse(p));
        expect(decoded[0]).toEqual({ o: store.origin, m: 1 });
        expect(decoded[1]).toEqual({ o: store.origin, c: ["pump-temp", ts, "pump-temp", ts + 1] });
        const chunks = decoded.slice(2);
        expect(chunks.length).toBeGreaterThan(1);
        for (const p of payloads.slice(2)) expect(Buffer.byteLength(p)).toBeLessThan(8000);
        expect(chunks.flatMap((c) => c.c).filter((v: unknown) => typeof v === "string")).toHaveLength(400);
        // History mode: the database itself lists what became current, in payloads of the same format.
        const seen = payloads.length;
        const newer = many.map((p, i) => point(p.elementId, ts + 10 + (i % 3), i, i % 2 ? "Good" : "Bad"));
        for (const p of newer) if (p.vqt.quality === "Bad") p.vqt.value = null;
        // What the statement announced is also what it returns: every newer point, not the stale one.
        expect(await store.writePoints([...newer, point("pump-temp", 5, 0)], "history")).toEqual(newer);
        // Every chunk: the database lists the elements in its own order, so no one id marks the last.
        await until(() => idsIn(payloads.slice(seen)) >= newer.length);
        const fromSql = payloads.slice(seen).map((p) => JSON.parse(p));
        expect(fromSql.length).toBeGreaterThan(1);
        for (const p of payloads.slice(seen)) expect(Buffer.byteLength(p)).toBeLessThan(8000);
        const listed = fromSql.flatMap((n) => {
          expect(n.o).toBe(store.origin);
          const pairs: [string, number][] = [];
          for (let i = 0; i < n.c.length; i += 2) pairs.push([n.c[i], n.c[i + 1]]);
          return pairs;
        });
        expect(listed.sort()).toEqual(newer.map((p) => [p.elementId, p.tsUs]).sort());
        // The page of points a receiver reads back, in the order asked; unknown keys stay empty.
        const got = await store.getPointsAt([
          { elementId: "pump-temp", tsUs: ts + 1 },
          { elementId: "pump-temp", tsUs: 1 },
          { elementId: "pump-temp", tsUs: ts },
        ]);
        expect(got.map((v) => v?.value)).toEqual([2, undefined, 1]);
      } finally {
        await listener.end();
        await store.close();
      }
    });

    it("reports a lost connection as unavailable, recovers by itself and exports its pool", async () => {
      const store = await openPostgres(db.url);
      try {
        await store.importModel(contractModel());
        await store.ping();
        const metrics = await registry.metrics();
        expect(metrics).toMatch(/database_pool_connections\{state="total"\} [1-9]/);
        expect(metrics).toMatch(/database_pool_connections\{state="idle"\} \d/);
        expect(metrics).toMatch(/database_pool_connections\{state="waiting"\} 0/);
        // Cut every connection: the retry on a fresh connection hides one cut.
        await terminateConnections(db.name);
        await store.ping();
        expect((await store.getObjects(["pump"])).size).toBe(1);
        // Cut them again and again under reads and writes: each call succeeds or reports the store
        // unavailable; no connection error escapes as an unhandled event.
        let cutting = true;
        const outcomes = new Map<string, number>();
        const worker = async (i: number) => {
          for (let n = 0; cutting; n++) {
            const call =
              i % 2 === 0
                ? readHistory(store, ["pump-temp"], {
                    startUs: 0,
                    endUs: Number.MAX_SAFE_INTEGER,
                    limitPerElement: 10,
                  })
                : store.writePoints(
                    [point("pump-temp", Date.UTC(2033, 0, 1) * 1000 + n * 1000 + i, n)],
                    "current",
                  );
            const outcome = await call.then(
              () => "ok",
              (err: unknown) => (err instanceof StoreUnavailableError ? "unavailable" : String(err)),
            );
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          }
        };
        const workers = Promise.all([0, 1, 2, 3].map(worker));
        for (let i = 0; i < 30; i++) {
          await terminateConnections(db.name);
          await new Promise((r) => setTimeout(r, 30));
        }
        cutting = false;
        await workers;
        expect([...outcomes.keys()].filter((k) => k !== "ok" && k !== "unavailable")).toEqual([]);
        expect(outcomes.get("ok")).toBeGreaterThan(0);
        // A database that refuses connections: unavailable (503), never a crash.
        await sql(PG_ADMIN_URL, `ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
        await terminateConnections(db.name);
        await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.getObjects(["pump"])).rejects.toMatchObject({ statusCode: 503 });
        await expect(store.writePoints([point("pump", 1, { speed: 1 })], "current")).rejects.toBeInstanceOf(
          StoreUnavailableError,
        );
        expect(store.connectionCount()).toBe(0);
        await sql(PG_ADMIN_URL, `ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
        await store.ping();
        expect((await store.getObjects(["pump"])).size).toBe(1);
        expect(store.connectionCount()).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
      expect(await registry.metrics()).not.toContain("database_pool_connections{");
    });
  });
});

async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query<R>(text);
  } finally {
    await client.end();
  }
}

async function until(check: () => boolean, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not reached before the deadline");
    await new Promise((r) => setTimeout(r, 20));
  }
}
