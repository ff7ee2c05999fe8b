import path from "node:path";
import type { Config } from "../config.js";
import { SqliteStore } from "./sqlite.js";
import type { Store } from "./store.js";

/** Opens and migrates the configured store: the embedded SQLite file under the data directory. */
export async function openStore(config: Config): Promise<Store> {
  const store = new SqliteStore(path.join(config.dataDir, "i3xd.sqlite"));
  try {
    await store.init();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
