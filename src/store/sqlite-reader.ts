import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { type HistoryStatements, prepareHistoryStatements, readSeries } from "./sqlite-history.js";
import type { HistoryJson, HistoryRange } from "./store.js";

/** What the pool asks a history reader thread: these elements' series in this range. */
export interface ReadRequest {
  seq: number;
  ids: readonly string[];
  range: HistoryRange;
}

/** The series in the order of the request's ids, or why the thread could not read them. */
export type ReadReply = { seq: number; series: HistoryJson[] } | { seq: number; error: string };

export interface ReaderData {
  file: string;
}

// A read-only connection of its own: WAL lets it read beside the store's writing connection, and a read
// transaction started after a write committed sees that write.
const { file } = workerData as ReaderData;
let statements: HistoryStatements | undefined;

function read(request: ReadRequest): ReadReply {
  try {
    if (statements === undefined) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma("busy_timeout = 5000");
      statements = prepareHistoryStatements(db);
    }
    const stmts = statements;
    return { seq: request.seq, series: request.ids.map((id) => readSeries(stmts, id, request.range)) };
  } catch (err) {
    return { seq: request.seq, error: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on("message", (request: ReadRequest) => {
  parentPort?.postMessage(read(request));
});
