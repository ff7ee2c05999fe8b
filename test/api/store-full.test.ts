// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_IDS } from "../../src/demo/plant-physics.js";
import { formatTimestampUs } from "../../src/domain/time.js";
import { getJson, postJson } from "../helpers/http.js";
import { parseMetrics, sampleValue, scrape } from "../helpers/metrics.js";
import { PG_ADMIN_URL, runPostgresTests, runPrefix } from "../helpers/pg.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";

// A store that runs out of room, for real: SQLite stopped by its own bound (max_page_count), SQLite on a
// small tmpfs that fills up, PostgreSQL with its database in a tablespace on a small tmpfs. Each time: the
// write is answered with 507 per item, reads keep working, /health/ready stays ready and says so, nothing
// stored before is damaged, and writes resume without anyone's help once there is room again.

const isRoot = process.getuid?.() === 0;
// Mounting a tmpfs needs root; CI runs these as root, and there a missing privilege fails the test.
const canMount = isRoot || process.env.CI === "true";

const mounts: string[] = [];
afterAll(() => {
  for (const dir of mounts) {
    try {
      execFileSync("umount", [dir]);
    } catch {
      // already unmounted by the test
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A tmpfs of `sizeMiB` mounted on a fresh directory, unmounted after the file's tests. */
function mountTmpfs(sizeMiB: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m`, "tmpfs", dir]);
  mounts.push(dir);
  return dir;
}

/** Fills the file system of `dir` with a file of its own until `leaveBytes` remain free. */
function fillDisk(dir: string, leaveBytes: number): string {
  const filler = path.join(dir, "filler");
  const s = fs.statfsSync(dir);
  const bytes = s.bavail * s.bsize - leaveBytes;
  if (bytes > 0) fs.writeFileSync(filler, Buffer.alloc(bytes));
  return filler;
}

const putHistory = (url: string, updates: unknown[]) =>
  postJson(url, "/v1/objects/history", { updates }, { method: "PUT" });

/** `n` flow points one second apart from `fromUs` (the flow type takes any number ≥ 0). */
function flowPoints(fromUs: number, n: number) {
  return Array.from({ length: n }, (_, k) => ({
    elementId: DEMO_IDS.flow,
    value: {
      value: 100 + (k % 50) / 7,
      quality: "Good",
      timestamp: formatTimestampUs(fromUs + k * 1_000_000),
    },
  }));
}

/** PUTs 1,000-point history batches until one is refused; returns that answer and the stored points. */
async function writeUntilRefused(url: string): Promise<{ refused: any; storedUs: number[] }> {
  let fromUs = Date.UTC(2020, 0, 1) * 1000;
  const storedUs: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const res = await putHistory(url, flowPoints(fromUs, 1000));
    expect(res.status).toBe(200);
    if (!res.body.success) return { refused: res.body, storedUs };
    storedUs.push(fromUs);
    fromUs += 1000 * 1_000_000;
  }
  throw new Error("the store never filled up");
}

/** The answer every test expects once the store is full, then the recovery, on any store. */
async function expectFullThenRecovers(
  server: TestServer,
  refused: any,
  storedUs: number[],
  reason: "size_bound" | "disk_full",
  makeRoom: () => void,
) {
  // Per item, in the bulk envelope: the HTTP status stays 200 (ADR 002, A17).
  expect(refused.success).toBe(false);
  expect(refused.results).toHaveLength(1000);
  for (const item of refused.results) {
    expect(item).toEqual({
      success: false,
      elementId: DEMO_IDS.flow,
      responseDetail: {
        title: "Insufficient Storage",
        status: 507,
        detail: expect.stringMatching(/^Not stored: /),
      },
    });
  }

  // Reads work: the current values and what was stored before the store filled up.
  const values = await postJson(server.url, "/v1/objects/value", {
    elementIds: [DEMO_IDS.flow, DEMO_IDS.tank],
  });
  expect(values.status).toBe(200);
  expect(values.body.success).toBe(true);
  const firstUs = storedUs[0];
  const history = await postJson(server.url, "/v1/objects/history", {
    elementIds: [DEMO_IDS.flow],
    startTime: formatTimestampUs(firstUs),
    endTime: formatTimestampUs(firstUs + 999_000_000),
  });
  expect(history.status).toBe(200);
  expect(history.body.results[0].result.values).toHaveLength(1000);

  // Ready (reads work), reporting the condition.
  const ready = await getJson(server.url, "/health/ready");
  expect(ready.status).toBe(200);
  expect(ready.body.result).toMatchObject({ status: "ready", storage: "full" });

  const metrics = parseMetrics((await scrape(server.metricsUrl ?? server.url)).text);
  expect(sampleValue(metrics, "store_write_rejected_total", { reason })).toBeGreaterThanOrEqual(1000);

  makeRoom();
  // Nobody restarts anything: the same kind of write is simply tried again until it is stored.
  const retry = flowPoints(Date.now() * 1000, 1);
  let stored: any;
  for (let i = 0; i < 200; i++) {
    stored = await putHistory(server.url, retry);
    if (stored.body.success) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(stored.body).toEqual({
    success: true,
    results: [{ success: true, elementId: DEMO_IDS.flow, result: null }],
  });
  const again = await getJson(server.url, "/health/ready");
  expect(again.body.result).toMatchObject({ status: "ready", storage: "ok" });
}

function integrityCheck(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma("integrity_check", { simple: true }) as string;
  } finally {
    db.close();
  }
}

describe("SQLite at its size bound (I3XD_STORE_MAX_BYTES, max_page_count)", () => {
  it("answers 507 per item, keeps reads and data intact, and resumes once the oldest history is gone", {
    timeout: 120_000,
  }, async () => {
    // The demo plant takes ~3.6 MB; the bound leaves room for a few hundred thousand more points.
    const data = makeTempDir();
    const server = await startTestServer({
      I3XD_TEST_STORE: "sqlite",
      I3XD_DATA_DIR: data.dir,
      I3XD_STORE_MAX_BYTES: "8m",
      I3XD_STORE_UPKEEP_INTERVAL: "3600s",
    });
    const file = path.join(data.dir, "i3xd.sqlite");
    try {
      const { refused, storedUs } = await writeUntilRefused(server.url);
      // The refused write itself starts the cycle that removes the oldest history (2020's first points).
      await expectFullThenRecovers(server, refused, storedUs.slice(-1), "size_bound", () => {});
      expect(fs.statSync(file).size).toBeLessThanOrEqual(8 * 1024 * 1024);
    } finally {
      await server.close("test");
    }
    expect(integrityCheck(file)).toBe("ok");
    data.remove();
  });
});

describe.skipIf(!canMount)("SQLite on a full file system (tmpfs)", () => {
  it("answers 507 per item, keeps reads and data intact, and resumes when space returns", {
    timeout: 120_000,
  }, async () => {
    const dataDir = mountTmpfs(24);
    const server = await startTestServer({
      I3XD_TEST_STORE: "sqlite",
      I3XD_DATA_DIR: dataDir,
      I3XD_STORE_UPKEEP_INTERVAL: "3600s",
    });
    const file = path.join(dataDir, "i3xd.sqlite");
    try {
      // Room for some writes still, then none.
      const filler = fillDisk(dataDir, 1024 * 1024);
      const { refused, storedUs } = await writeUntilRefused(server.url);
      expect(storedUs.length).toBeGreaterThan(0);
      await expectFullThenRecovers(server, refused, storedUs, "disk_full", () => fs.rmSync(filler));
    } finally {
      await server.close("test");
    }
    expect(integrityCheck(file)).toBe("ok");
  });
});

const pgEnabled = canMount && (await runPostgresTests());

describe.skipIf(!pgEnabled)("PostgreSQL on a full tablespace (tmpfs)", () => {
  it("answers 507 per item (53100 disk_full), keeps reads and data intact, and resumes when space returns", {
    timeout: 120_000,
  }, async () => {
    const dir = mountTmpfs(64);
    // The server runs as the postgres user and wants an empty directory of its own.
    const location = path.join(dir, "tablespace");
    fs.mkdirSync(location, { mode: 0o700 });
    execFileSync("chown", ["postgres:postgres", location]);
    const name = `${runPrefix()}full`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    let server: TestServer | undefined;
    try {
      await admin.query(`CREATE TABLESPACE ${name} LOCATION '${location}'`);
      await admin.query(`CREATE DATABASE ${name} TABLESPACE ${name}`);
      const url = new URL(PG_ADMIN_URL);
      url.pathname = `/${name}`;
      server = await startTestServer({ I3XD_STORE_URL: url.toString(), I3XD_STORE_UPKEEP_INTERVAL: "3600s" });
      const filler = fillDisk(dir, 2 * 1024 * 1024);
      const { refused, storedUs } = await writeUntilRefused(server.url);
      expect(storedUs.length).toBeGreaterThan(0);
      await expectFullThenRecovers(server, refused, storedUs, "disk_full", () => fs.rmSync(filler));
      // Everything stored before still reads back in full from the database itself.
      const check = new pg.Client({ connectionString: url.toString() });
      await check.connect();
      try {
        const { rows } = await check.query("SELECT count(*)::int AS n FROM history WHERE element_id = $1", [
          DEMO_IDS.flow,
        ]);
        expect(rows[0].n).toBeGreaterThanOrEqual(storedUs.length * 1000);
      } finally {
        await check.end();
      }
    } finally {
      await server?.close("test");
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.query(`DROP TABLESPACE IF EXISTS ${name}`).catch(() => {});
      await admin.end();
    }
  });
});
