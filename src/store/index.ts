import path from "node:path";
import type { Config } from "../config.js";
import { PostgresStore } from "./postgres/postgres.js";
import { SqliteStore } from "./sqlite/sqlite.js";
import type { Store } from "./store.js";

/**
 * Opens and migrates the configured store: PostgreSQL when `I3XD_STORE_URL` is set (several replicas can
 * share it), otherwise the embedded SQLite file under the data directory.
 */
export async function openStore(config: Config): Promise<Store> {
  const retention = { defaultMs: config.historyRetentionMs, byType: config.historyRetentionByType };
  const store: Store =
    config.storeUrl !== undefined
      ? new PostgresStore({
          connectionString: config.storeUrl,
          poolMax: config.pgPoolMax,
          retention,
          upkeepIntervalMs: config.storeUpkeepIntervalMs,
        })
      : new SqliteStore(path.join(config.dataDir, "i3xd.sqlite"), {
          historyReadThreads: config.historyReadThreads,
          retention,
          maxBytes: config.storeMaxBytes,
          upkeepIntervalMs: config.storeUpkeepIntervalMs,
        });
  try {
    await store.init();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
