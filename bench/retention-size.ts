/**
 * SQLite file size under the demo plant's writes, with and without history retention, on a simulated clock:
 * the demo plant with its 24 h of seeded history, then `RETENTION_BENCH_HOURS` of simulator ticks (every
 * demo value, once per simulated second, as `PUT /v1/objects/value` stores them), the store's upkeep run
 * once per simulated minute as its timer would. Prints the database file and WAL sizes every
 * simulated 15 minutes. Run: `node --import tsx bench/retention-size.ts`; results in
 * docs/performance-notes.md.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { demoPlantModel } from "../src/demo/demo-plant.js";
import { advance, plantValues, restoreState, seededRandom } from "../src/demo/plant-physics.js";
import { formatTimestampUs } from "../src/domain/time.js";
import { rootLogger } from "../src/observability/logger.js";
import { SqliteStore } from "../src/store/sqlite/sqlite.js";
import type { PointWrite } from "../src/store/store.js";

rootLogger().level = "silent";

const HOURS = Number(process.env.RETENTION_BENCH_HOURS ?? 3);
const TICK_S = 1;
const HOUR_MS = 3_600_000;
const MiB = 1024 * 1024;

async function run(retentionMs: number | undefined): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-retention-bench-"));
  const file = path.join(dir, "i3xd.sqlite");
  const store = new SqliteStore(file, {
    retention: { defaultMs: retentionMs, byType: new Map() },
    upkeepIntervalMs: 86_400_000,
  });
  await store.init();
  const startMs = Date.now();
  const model = demoPlantModel(new Date(startMs));
  await store.importModel(model);
  await store.runUpkeep(startMs);
  const random = seededRandom(7);
  const state = restoreState(
    await store.getCurrentValues(model.objects.map((o) => o.elementId)),
    startMs * 1000,
  );
  const rows = [`| 0 min | ${mib(file)} |`];
  const ticks = (HOURS * 3600) / TICK_S;
  for (let t = 1; t <= ticks; t++) {
    const nowMs = startMs + t * TICK_S * 1000;
    advance(state, nowMs * 1000, random);
    const points: PointWrite[] = [];
    for (const [elementId, value] of plantValues(state, random)) {
      points.push({
        elementId,
        tsUs: nowMs * 1000,
        vqt: { value, quality: "Good", timestamp: formatTimestampUs(nowMs * 1000) },
      });
    }
    await store.writePoints(points, "current");
    if ((t * TICK_S) % 60 === 0) await store.runUpkeep(nowMs);
    if ((t * TICK_S) % 900 === 0) rows.push(`| ${(t * TICK_S) / 60} min | ${mib(file)} |`);
  }
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return rows;
}

/** The database file and its WAL, in MiB. */
function mib(file: string): string {
  const db = fs.statSync(file).size;
  const wal = fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0;
  return `${(db / MiB).toFixed(2)} MiB (+ WAL ${(wal / MiB).toFixed(2)})`;
}

const without = await run(undefined);
const withRetention = await run(HOUR_MS);
console.log("| simulated time | no retention | I3XD_HISTORY_RETENTION=1h |");
console.log("| --- | --- | --- |");
for (let i = 0; i < without.length; i++) {
  const [, time, a] = without[i].split("|");
  const b = withRetention[i].split("|")[2];
  console.log(`|${time}|${a}|${b}|`);
}
