import { workerData } from "node:worker_threads";
import type Database from "better-sqlite3";
import {
  openWritable,
  type PointBatch,
  prepareWriteStatements,
  putPoints,
  type WriteStatements,
} from "./sqlite-writes.js";
import { serveStoreRequests } from "./store-thread-serve.js";

// A writing connection of its own. The store sends it a batch only while no other write is under way
// (`SqliteStore.inOrder`), so the two connections never wait for each other's write lock.
const { file, maxBytes } = workerData as { file: string; maxBytes: number | undefined };
let db: Database.Database | undefined;
let statements: WriteStatements | undefined;

serveStoreRequests((batch: PointBatch): number[] => {
  if (db === undefined || statements === undefined) {
    db = openWritable(file, { fileMustExist: true }, maxBytes);
    statements = prepareWriteStatements(db);
  }
  const stmts = statements;
  return db.transaction(() => putPoints(stmts, batch))();
});
