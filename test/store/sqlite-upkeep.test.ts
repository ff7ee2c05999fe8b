import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { demoPlantModel } from "../../src/demo/demo-plant.js";
import { DEMO_IDS, DEMO_VALUE_IDS } from "../../src/demo/plant-physics.js";
import { formatTimestampUs } from "../../src/domain/time.js";
import { rootLogger } from "../../src/observability/logger.js";
import { storeRetentionDeleted } from "../../src/observability/metrics.js";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite/migrations/sqlite.js";
import { type SqliteOptions, SqliteStore } from "../../src/store/sqlite/sqlite.js";
import { type PointWrite, StoreFullError } from "../../src/store/store.js";

// The size bound logs its warnings, as it should; not into the test output.
rootLogger().level = "silent";

const HOUR_MS = 3_600_000;
const HOUR_US = 3_600_000_000;
const KEEP_AN_HOUR = { defaultMs: HOUR_MS, byType: new Map<string, number>() };
/** Upkeep runs when a test says so: the timer's first cycle would race with the test's own. */
const BY_HAND = { upkeepIntervalMs: 86_400_000 };

let dir: string;
let file: string;
let store: SqliteStore | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-upkeep-"));
  file = path.join(dir, "i3xd.sqlite");
});

afterEach(async () => {
  await store?.close();
  store = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(options: SqliteOptions): Promise<SqliteStore> {
  store = new SqliteStore(file, { ...BY_HAND, ...options });
  await store.init();
  // The first cycle starts with the store, on a timer due at once; let it fire and finish (a timer set now
  // fires after it), so that it cannot start after a test's own cycle and run beside the test's checks.
  await new Promise((resolve) => setTimeout(resolve, 0));
  await store.runUpkeep();
  return store;
}

/** A second, read-only look at the file, as an operator's sqlite3 shell would have. */
function inspect<T>(query: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return query(db);
  } finally {
    db.close();
  }
}

const count = (sql: string, ...params: unknown[]) =>
  inspect(
    (db) =>
      db
        .prepare(sql)
        .pluck()
        .get(...params) as number,
  );

function point(elementId: string, tsUs: number, value: unknown): PointWrite {
  return { elementId, tsUs, vqt: { value, quality: "Good", timestamp: formatTimestampUs(tsUs) } };
}

async function retentionDeleted(reason: string): Promise<number> {
  return (await storeRetentionDeleted.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe("SQLite history retention", () => {
  it("converts an existing file to incremental auto-vacuum and keeps its data", async () => {
    const old = new Database(file);
    old.pragma("journal_mode = WAL");
    old.exec(SQLITE_MIGRATIONS[0].sql);
    old.pragma("user_version = 1");
    old.prepare("INSERT INTO history VALUES ('e1', 1, '42', 'Good')").run();
    expect(old.pragma("auto_vacuum", { simple: true })).toBe(0);
    old.close();

    const s = await open({});
    expect(inspect((db) => db.pragma("auto_vacuum", { simple: true }))).toBe(2); // INCREMENTAL
    expect(inspect((db) => db.pragma("user_version", { simple: true }))).toBe(SQLITE_MIGRATIONS.length);
    const all = { startUs: 0, endUs: 10, limitPerElement: 10 };
    expect((await s.getHistoryJson(["e1"], all)).get("e1")?.json).toBe(
      '[{"value":42,"quality":"Good","timestamp":"1970-01-01T00:00:00.000001Z"}]',
    );
  });

  it("removes the demo plant's history older than 1 h in one cycle, never a current value", async () => {
    const now = Date.now();
    const s = await open({ retention: KEEP_AN_HOUR });
    await s.importModel(demoPlantModel(new Date(now)));
    // One element whose current value is five hours old: retention must leave it alone.
    const stale = point(DEMO_IDS.flow, (now - 5 * HOUR_MS) * 1000, 12.5);
    await s.writePoints([stale], "current");
    const cutoffUs = (now - HOUR_MS) * 1000;
    const recentBefore = count("SELECT count(*) FROM history WHERE ts_us >= ?", cutoffUs);
    expect(count("SELECT count(*) FROM history WHERE ts_us < ?", cutoffUs)).toBeGreaterThan(30_000);

    const result = await s.runUpkeep(now);

    expect(count("SELECT count(*) FROM history WHERE ts_us < ?", cutoffUs)).toBe(0);
    expect(count("SELECT count(*) FROM history WHERE ts_us >= ?", cutoffUs)).toBe(recentBefore);
    expect(result.retentionDeleted).toBeGreaterThan(30_000);
    const current = await s.getCurrentValues(DEMO_VALUE_IDS);
    expect(current.size).toBe(DEMO_VALUE_IDS.length);
    expect(current.get(DEMO_IDS.flow)).toEqual(stale.vqt);
    // The freed pages went back to the file system.
    expect(result.vacuumedPages).toBeGreaterThan(0);
    expect(inspect((db) => db.pragma("freelist_count", { simple: true }))).toBe(0);
  });

  it("keeps a type's own period (I3XD_HISTORY_RETENTION_BY_TYPE) and the default for the rest", async () => {
    const now = Date.now();
    const byType = new Map([["temperature-type", 3 * HOUR_MS]]);
    const s = await open({ retention: { defaultMs: HOUR_MS, byType } });
    await s.importModel(demoPlantModel(new Date(now)));
    await s.runUpkeep(now);
    const oldest = (id: string) => count("SELECT min(ts_us) FROM history WHERE element_id = ?", id);
    const temperature = oldest(DEMO_IDS.bearingTemperature);
    expect(temperature).toBeGreaterThanOrEqual((now - 3 * HOUR_MS) * 1000);
    expect(temperature).toBeLessThan((now - 2.9 * HOUR_MS) * 1000);
    expect(oldest(DEMO_IDS.flow)).toBeGreaterThanOrEqual((now - HOUR_MS) * 1000);
  });

  it("lets concurrent reads and writes through between its batches (reports the largest pause)", async () => {
    const now = Date.now();
    const s = await open({ retention: KEEP_AN_HOUR });
    await s.importModel(demoPlantModel(new Date(now)));
    // 15 demo values × 12,000 old points (180,000 rows) besides the seeded day's older 23 h: over 220
    // delete batches for retention.
    const old = (now - 30 * HOUR_MS) * 1000;
    for (let i = 0; i < 12; i++) {
      const batch: PointWrite[] = [];
      for (const id of DEMO_VALUE_IDS) {
        for (let k = 0; k < 1000; k++) batch.push(point(id, old + (i * 1000 + k) * 1000, k));
      }
      await s.writePoints(batch, "history");
    }

    let done = false;
    const pauses = { read: [] as number[], write: [] as number[] };
    const traffic = (async () => {
      let n = 0;
      while (!done) {
        let t = performance.now();
        await s.writePoints([point(DEMO_IDS.tank, (now + n++) * 1000, { level: n })], "current");
        pauses.write.push(performance.now() - t);
        t = performance.now();
        await s.getHistoryJson([DEMO_IDS.flow], {
          startUs: (now - HOUR_MS) * 1000,
          endUs: now * 1000,
          limitPerElement: 10,
        });
        pauses.read.push(performance.now() - t);
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const started = performance.now();
    const result = await s.runUpkeep(now);
    const tookMs = performance.now() - started;
    done = true;
    await traffic;

    expect(result.retentionDeleted).toBeGreaterThanOrEqual(180_000);
    // Requests went on during the cycle: many more of them than a cycle holding the store throughout allows.
    expect(pauses.write.length).toBeGreaterThan(50);
    const at = (xs: number[], q: number) =>
      [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))].toFixed(1);
    const spread = (xs: number[]) =>
      `median ${at(xs, 0.5)} ms, p99 ${at(xs, 0.99)} ms, largest ${at(xs, 1)} ms`;
    console.info(
      `retention of ${result.retentionDeleted} rows took ${tookMs.toFixed(0)} ms; ${pauses.write.length} writes ` +
        `and reads ran meanwhile; writes: ${spread(pauses.write)}; reads: ${spread(pauses.read)}`,
    );
  });
});

describe("SQLite size bound (I3XD_STORE_MAX_BYTES)", () => {
  const MAX_BYTES = 4 * 1024 * 1024;
  const payload = "x".repeat(200);

  /** Writes 1,000-point batches of 1 s steps from `fromUs` until the store refuses one. */
  async function fill(s: SqliteStore, fromUs: number): Promise<{ stored: number; error: unknown }> {
    let stored = 0;
    for (;;) {
      const batch: PointWrite[] = [];
      for (let k = 0; k < 1000; k++) {
        const i = stored + k;
        batch.push(point(DEMO_VALUE_IDS[i % 5], fromUs + i * 1_000_000, payload));
      }
      try {
        await s.writePoints(batch, "history");
      } catch (error) {
        return { stored, error };
      }
      stored += batch.length;
      if (stored > 1_000_000) throw new Error("the bound never stopped the writes");
    }
  }

  it("refuses a write that does not fit, keeps what it stored intact, and takes writes again by itself", async () => {
    const s = await open({ maxBytes: MAX_BYTES });
    await s.importModel({ ...demoPlantModel(new Date()), history: [] });
    const imported = count("SELECT count(*) FROM history");
    const startUs = Date.now() * 1000 - 10 * HOUR_US;
    const { stored, error } = await fill(s, startUs);

    expect(error).toBeInstanceOf(StoreFullError);
    expect((error as StoreFullError).reason).toBe("size_bound");
    expect(fs.statSync(file).size).toBeLessThanOrEqual(MAX_BYTES);
    expect(inspect((db) => db.pragma("integrity_check", { simple: true }))).toBe("ok");
    // Everything acknowledged before is there; the refused batch left nothing behind.
    expect(count("SELECT count(*) FROM history")).toBe(imported + stored);
    const first = await s.getHistoryJson([DEMO_VALUE_IDS[0]], {
      startUs,
      endUs: startUs,
      limitPerElement: 1,
    });
    expect(first.get(DEMO_VALUE_IDS[0])?.count).toBe(1);

    // The refusal started a cycle that removes the oldest history: the same write soon succeeds, unaided.
    const retry = [point(DEMO_IDS.flow, Date.now() * 1000, 1)];
    let accepted = false;
    for (let i = 0; i < 100 && !accepted; i++) {
      accepted = await s.writePoints(retry, "current").then(
        () => true,
        () => false,
      );
      if (!accepted) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(accepted).toBe(true);
  });

  it("near the bound removes the oldest history first, never current values or the model", async () => {
    const s = await open({ maxBytes: MAX_BYTES });
    await s.importModel({ ...demoPlantModel(new Date()), history: [] });
    const imported = count("SELECT count(*) FROM history");
    const before = await retentionDeleted("size_bound");
    const startUs = Date.now() * 1000 - 10 * HOUR_US;
    const { stored } = await fill(s, startUs);
    const newestBefore = count("SELECT max(ts_us) FROM history");

    // The refused write already started a cycle; this one waits for it and finds the store under the bound.
    await s.runUpkeep();

    const deleted = (await retentionDeleted("size_bound")) - before;
    expect(deleted).toBeGreaterThan(0);
    const used = inspect(
      (db) =>
        ((db.pragma("page_count", { simple: true }) as number) -
          (db.pragma("freelist_count", { simple: true }) as number)) *
        (db.pragma("page_size", { simple: true }) as number),
    );
    expect(used).toBeLessThanOrEqual(MAX_BYTES * 0.8);
    // Oldest first: what is left is one contiguous, newest stretch of time.
    const left = count("SELECT count(*) FROM history");
    expect(left).toBe(imported + stored - deleted);
    expect(count("SELECT max(ts_us) FROM history")).toBe(newestBefore);
    const oldestLeft = count("SELECT min(ts_us) FROM history");
    expect(count("SELECT count(*) FROM history WHERE ts_us >= ?", oldestLeft)).toBe(left);
    expect(oldestLeft).toBeGreaterThan(startUs);
    expect((await s.getCurrentValues(DEMO_VALUE_IDS)).size).toBe(DEMO_VALUE_IDS.length);
    expect((await s.listObjects()).length).toBeGreaterThanOrEqual(DEMO_VALUE_IDS.length);
    expect(inspect((db) => db.pragma("integrity_check", { simple: true }))).toBe("ok");
  });
});
