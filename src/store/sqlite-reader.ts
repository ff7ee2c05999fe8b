import { workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { type HistoryStatements, prepareHistoryStatements, readSeries } from "./sqlite-history.js";
import type { HistoryJson, HistoryRange } from "./store.js";
import { serveStoreRequests } from "./store-thread-serve.js";

/** What the pool asks a history reader thread: these elements' series in this range, in this order. */
export interface ReadRequest {
  ids: readonly string[];
  range: HistoryRange;
}

// A read-only connection of its own: WAL lets it read beside the store's writing connection, and a read
// transaction started after a write committed sees that write.
const { file } = workerData as { file: string };
let statements: HistoryStatements | undefined;

serveStoreRequests((request: ReadRequest): HistoryJson[] => {
  if (statements === undefined) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 5000");
    statements = prepareHistoryStatements(db);
  }
  const stmts = statements;
  return request.ids.map((id) => readSeries(stmts, id, request.range));
});
