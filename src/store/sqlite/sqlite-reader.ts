import { workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { HistoryJson, HistoryRange } from "../store.js";
import { prepareHistoryStatements, readSeries } from "./sqlite-history.js";
import { serveStoreRequests } from "./store-thread-serve.js";

/** What the pool asks a history reader thread: these elements' series in this range, in this order. */
export interface ReadRequest {
  ids: readonly string[];
  range: HistoryRange;
}

// A read-only connection of its own: WAL lets it read beside the store's writing connection, and a read
// transaction started after a write committed sees that write.
const { file } = workerData as { file: string };
let read: ((request: ReadRequest) => HistoryJson[]) | undefined;

const utf8 = new TextEncoder();

serveStoreRequests(
  (request: ReadRequest): HistoryJson[] => {
    if (read === undefined) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma("busy_timeout = 5000");
      const stmts = prepareHistoryStatements(db);
      // One transaction: this thread's share of a read sees one snapshot, as the event loop's whole read
      // does.
      read = db.transaction((r: ReadRequest) => r.ids.map((id) => readSeries(stmts, id, r.range)));
    }
    // As bytes, each in a buffer of its own (TextEncoder's, never a shared pool): the buffers are moved
    // to the event loop, which writes them into the response as they are; as strings they would be
    // copied across and stay in the event loop's heap until its next full collection.
    return read(request).map((s) => ({
      ...s,
      json: typeof s.json === "string" ? utf8.encode(s.json) : s.json,
    }));
  },
  (series) => series.map((s) => (s.json as Uint8Array).buffer as ArrayBuffer),
);
