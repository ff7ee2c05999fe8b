import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { contractModel, describeStoreContract } from "./contract.js";

async function openSqlite(file: string): Promise<SqliteStore> {
  const store = new SqliteStore(file);
  await store.init();
  return store;
}

describeStoreContract("SQLite", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-store-"));
  const file = path.join(dir, "i3xd.sqlite");
  let store = await openSqlite(file);
  return {
    store,
    async reopen() {
      await store.close();
      store = await openSqlite(file);
      return store;
    },
    async cleanup() {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
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
