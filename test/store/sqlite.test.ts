import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jsonText } from "../../src/domain/raw-json.js";
import { formatTimestampUs } from "../../src/domain/time.js";
import { type SqliteOptions, SqliteStore } from "../../src/store/sqlite/sqlite.js";
import type { HistoryJson, PointWrite } from "../../src/store/store.js";
import { contractModel, describeStoreContract } from "./contract.js";

async function openSqlite(file: string, options: SqliteOptions = {}): Promise<SqliteStore> {
  const store = new SqliteStore(file, options);
  await store.init();
  return store;
}

// Both ways history is read: in threads (the server's default) and on the event loop.
for (const options of [{ historyReadThreads: 2 }, {}]) {
  const name = options.historyReadThreads ? "SQLite, with reader threads" : "SQLite";
  describeStoreContract(name, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-store-"));
    const file = path.join(dir, "i3xd.sqlite");
    let store = await openSqlite(file, options);
    return {
      store,
      async reopen() {
        await store.close();
        store = await openSqlite(file, options);
        return store;
      },
      async cleanup() {
        await store.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}

/** A history read with every series as a string, whether it came as text or as bytes. */
function asText(read: Map<string, HistoryJson>): Map<string, HistoryJson> {
  return new Map([...read].map(([id, s]) => [id, { ...s, json: jsonText(s.json) }]));
}

/** A database file in a fresh directory, holding the contract model. */
async function modelFile(prefix: string): Promise<{ dir: string; file: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, "i3xd.sqlite");
  const store = await openSqlite(file);
  await store.importModel(contractModel());
  await store.close();
  return { dir, file };
}

describe("SQLite history reader threads", () => {
  const range = { startUs: 0, endUs: Number.MAX_SAFE_INTEGER, limitPerElement: 2_500 };
  const ids = ["pump", "pump-temp", "pump", "nowhere", "pump-speed"];
  let dir: string;
  let file: string;

  beforeEach(async () => {
    ({ dir, file } = await modelFile("i3xd-readers-"));
    const store = await openSqlite(file);
    // Three elements, 3,000 points each (more than the limit), values of every JSON kind.
    const points: PointWrite[] = [];
    for (let i = 0; i < 3_000; i++) {
      const tsUs = 1_700_000_000_000_000 + i * 1_000_123;
      const timestamp = formatTimestampUs(tsUs);
      points.push({ elementId: "pump-temp", tsUs, vqt: { value: i / 7, quality: "Good", timestamp } });
      points.push({
        elementId: "pump",
        tsUs,
        vqt: { value: { n: i, s: `"q" ${i}`, a: [i, null] }, quality: "Uncertain", timestamp },
      });
      if (i % 2 === 0)
        points.push({ elementId: "pump-speed", tsUs, vqt: { value: null, quality: "Bad", timestamp } });
    }
    await store.writePoints(points, "history");
    await store.close();
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("answer byte for byte what the event loop reads, and see a write made just before", async () => {
    const inLoop = await openSqlite(file);
    const threaded = await openSqlite(file, { historyReadThreads: 3 });
    try {
      const expected = await inLoop.getHistoryJson(ids, range);
      expect([...expected.keys()].sort()).toEqual(["nowhere", "pump", "pump-speed", "pump-temp"]);
      expect(expected.get("pump")?.truncated).toBe(true);
      const fromThreads = await threaded.getHistoryJson(ids, range);
      // Moved across as bytes, the same text once decoded.
      expect(fromThreads.get("pump")?.json).toBeInstanceOf(Uint8Array);
      expect(asText(fromThreads)).toEqual(expected);
      // Read-your-writes: the threads' connections see what the store committed before the read.
      const tsUs = 1_600_000_000_000_000;
      await threaded.writePoints(
        [
          {
            elementId: "pump-temp",
            tsUs,
            vqt: { value: -1, quality: "Good", timestamp: formatTimestampUs(tsUs) },
          },
        ],
        "history",
      );
      const after = asText(await threaded.getHistoryJson(["pump-temp"], range)).get("pump-temp");
      expect(
        jsonText(after?.json ?? "").startsWith(
          `[{"value":-1,"quality":"Good","timestamp":"2020-09-13T12:26:40.000Z"}`,
        ),
      ).toBe(true);
      expect(after).toEqual((await inLoop.getHistoryJson(["pump-temp"], range)).get("pump-temp"));
    } finally {
      await threaded.close();
      await inLoop.close();
    }
  });

  it("leave the event loop free while they read", async () => {
    const cases: Array<[number, boolean]> = [
      [0, false],
      [2, true],
    ];
    for (const [historyReadThreads, loopRuns] of cases) {
      const store = await openSqlite(file, { historyReadThreads });
      try {
        // The first read starts the threads; the next five are observed.
        await store.getHistoryJson(ids, range);
        let readsWithATurn = 0;
        for (let i = 0; i < 5; i++) {
          let ran = false;
          setImmediate(() => {
            ran = true;
          });
          await store.getHistoryJson(ids, range);
          if (ran) readsWithATurn++;
        }
        // On the event loop a read always finishes before anything else runs. In the threads it does not,
        // though a single short read can lose that race when a busy machine keeps this thread off the CPU.
        expect(readsWithATurn > 0).toBe(loopRuns);
      } finally {
        await store.close();
      }
    }
  });

  it("fall back to the event loop when a thread cannot open the database", async () => {
    const store = await openSqlite(file, { historyReadThreads: 2 });
    try {
      const expected = asText(await store.getHistoryJson(ids, range));
      await store.close();
      const again = await openSqlite(file, { historyReadThreads: 2 });
      // The store's connection keeps reading the unlinked file; a thread's new connection finds nothing.
      for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
      try {
        expect(asText(await again.getHistoryJson(ids, range))).toEqual(expected);
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
    }
  });
});

describe("SQLite store specifics", () => {
  it("uses WAL, migrates once and reports a missing database file until it is back", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-store-"));
    const file = path.join(dir, "i3xd.sqlite");
    try {
      const store = await openSqlite(file);
      await store.importModel(contractModel());
      await store.close();
      // A second open runs no migration again and sees the data.
      const again = await openSqlite(file);
      expect((await again.listObjects()).length).toBe(4);
      const moved = path.join(dir, "moved.sqlite");
      fs.renameSync(file, moved);
      await expect(again.ping()).rejects.toThrow(/missing/);
      fs.renameSync(moved, file);
      await again.ping();
      expect((await again.getObjects(["pump"])).size).toBe(1);
      expect(fs.existsSync(`${file}-wal`)).toBe(true);
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads history row by row when the stored text holds the one-string read's separator", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-store-"));
    const file = path.join(dir, "i3xd.sqlite");
    try {
      const store = await openSqlite(file);
      await store.importModel(contractModel());
      await store.close();
      // Text no JSON.stringify writes (a raw control character), put there by hand.
      const db = new Database(file);
      db.prepare("INSERT INTO history (element_id, ts_us, value, quality) VALUES (?, ?, ?, ?)").run(
        "pump",
        1_000_000,
        '"a\u0001b"',
        "Good",
      );
      db.close();
      const again = await openSqlite(file);
      const range = { startUs: 0, endUs: 2_000_000, limitPerElement: 10 };
      expect((await again.getHistoryJson(["pump"], range)).get("pump")).toEqual({
        json: '[{"value":"a\u0001b","quality":"Good","timestamp":"1970-01-01T00:00:01.000Z"}]',
        count: 1,
        truncated: false,
      });
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
