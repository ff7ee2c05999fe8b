/**
 * `node --import tsx bench/pg-explain.ts`: the query plan of the PostgreSQL store's history read for
 * 10 elements x 1 hour at 1 Hz (36,000 points), on a fresh database with background volume, as
 * `EXPLAIN (ANALYZE, BUFFERS)`: an hour inside one day, and an hour across midnight (two partitions).
 * Quoted in docs/adr/008-postgres-store.md.
 *
 * Volume: the 10 elements at 1 Hz for the last 26 h (936,000 points) and 500 other elements at 0.1 Hz for
 * the same time (4.68 M points), in the daily partitions the server creates. BENCH_PG_URL is the admin
 * connection (postgres://postgres@127.0.0.1:5432/postgres); the database is dropped afterwards.
 */
import pg from "pg";
import { HISTORY_SERIES_SQL, PostgresStore } from "../src/store/postgres/postgres.js";

const ADMIN = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const name = `i3xd_explain_${process.pid}`;
const HOUR_US = 3_600_000_000;

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  try {
    const store = new PostgresStore({ connectionString: url.toString() });
    await store.init();
    await store.close();

    const db = new pg.Client({ connectionString: url.toString() });
    db.on("error", () => {});
    await db.connect();
    const nowUs = Math.floor(Date.now() / 1000) * 1_000_000;
    const fromUs = nowUs - 26 * HOUR_US;
    const t0 = Date.now();
    await db.query(
      `INSERT INTO history (element_id, ts_us, value, quality)
        SELECT 'sensor-' || lpad(e::text, 3, '0'), ts, to_json(round((20 + random() * 5)::numeric, 3)), 'Good'
          FROM generate_series(1, 10) e, generate_series($1::int8, $2::int8, 1000000) ts`,
      [fromUs, nowUs - 1],
    );
    await db.query(
      `INSERT INTO history (element_id, ts_us, value, quality)
        SELECT 'other-' || lpad(e::text, 4, '0'), ts, to_json(round((random() * 100)::numeric, 2)), 'Good'
          FROM generate_series(1, 500) e, generate_series($1::int8, $2::int8, 10000000) ts`,
      [fromUs, nowUs - 1],
    );
    await db.query("VACUUM ANALYZE history");
    const counts = await db.query<{ n: string }>("SELECT count(*) AS n FROM history");
    console.log(`-- ${counts.rows[0].n} history rows loaded in ${Date.now() - t0} ms`);
    const parts = await db.query<{ relname: string; rows: string }>(
      `SELECT c.relname, c.reltuples::int8 AS rows FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'history'::regclass AND c.reltuples > 0 ORDER BY 1`,
    );
    for (const p of parts.rows) console.log(`-- ${p.relname}: ~${p.rows} rows`);

    const ids = Array.from({ length: 10 }, (_, i) => `sensor-${String(i + 1).padStart(3, "0")}`);
    await db.query(`PREPARE history_range(text[], int8, int8, int8) AS ${HISTORY_SERIES_SQL}`);
    // The server's named statement switches to a generic plan after five executions: show that one.
    await db.query("SET plan_cache_mode = force_generic_plan");
    console.log(`\n-- history_range(text[], int8, int8, int8) AS${HISTORY_SERIES_SQL}`);
    // An hour within a day (ending 90 minutes ago), and the hour around the last midnight (UTC) at least
    // an hour ago.
    const endUs = nowUs - 90 * 60_000_000;
    const midnight = Math.floor((nowUs - HOUR_US) / (24 * HOUR_US)) * 24 * HOUR_US;
    const windows = [
      { label: "an hour within one day", startUs: endUs - HOUR_US + 1_000_000, endUs },
      {
        label: "an hour across midnight",
        startUs: midnight - HOUR_US / 2,
        endUs: midnight + HOUR_US / 2 - 1,
      },
    ];
    for (const w of windows) {
      const args = `ARRAY[${ids.map((id) => `'${id}'`).join(", ")}], ${w.startUs}, ${w.endUs}, 100001`;
      for (let i = 0; i < 3; i++) await db.query(`EXECUTE history_range(${args})`);
      const count = await db.query(`EXECUTE history_range(${args})`);
      const plan = await db.query<{ "QUERY PLAN": string }>(
        `EXPLAIN (ANALYZE, BUFFERS) EXECUTE history_range(${args})`,
      );
      console.log(
        `\n-- ${w.label}: ${new Date(w.startUs / 1000).toISOString()} .. ${new Date(w.endUs / 1000).toISOString()}, ${count.rowCount} series`,
      );
      console.log("EXPLAIN (ANALYZE, BUFFERS) EXECUTE history_range(<10 ids>, <start>, <end>, 100001)");
      for (const row of plan.rows) console.log(row["QUERY PLAN"]);
    }
    await db.end();
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
