import type Database from "better-sqlite3";
import { NO_POINTS, pointHeadSql, seriesFromText, vqtJson } from "../rows.js";
import type { HistoryJson, HistoryRange } from "../store.js";

/**
 * The SQLite store's history range read, as prepared statements on one connection: the store's own
 * connection on the event loop, or a read-only connection in a history reader thread
 * (`sqlite-readers.ts`). Both run this code, so both answer byte for byte alike.
 */
export interface HistoryStatements {
  rows: Database.Statement<unknown[], [number, string, string]>;
  text: Database.Statement<unknown[], string | null>;
}

export function prepareHistoryStatements(db: Database.Database): HistoryStatements {
  return {
    rows: db
      .prepare(
        `SELECT ts_us, value, quality FROM history
          WHERE element_id = ? AND ts_us >= ? AND ts_us <= ? ORDER BY ts_us LIMIT ?`,
      )
      .raw(true) as unknown as HistoryStatements["rows"],
    // The same range as one string in `seriesFromText`'s form (\x01 is never raw in JSON that
    // JSON.stringify wrote). SQLite builds it far cheaper than the driver hands over three values per row.
    text: db
      .prepare(
        `SELECT group_concat(ts_us || '\x01' || ${pointHeadSql({ value: "value", quality: "json_quote(quality)" })},
                             '\x01')
           FROM (SELECT ts_us, value, quality FROM history
                  WHERE element_id = ? AND ts_us >= ? AND ts_us <= ? ORDER BY ts_us LIMIT ?)`,
      )
      .pluck(true) as HistoryStatements["text"],
  };
}

/** One element's series in the range (at most `limitPerElement` points, earliest first). */
export function readSeries(stmts: HistoryStatements, id: string, range: HistoryRange): HistoryJson {
  const { startUs, endUs, limitPerElement: limit } = range;
  const text = stmts.text.get(id, startUs, endUs, limit + 1);
  if (text == null) return NO_POINTS;
  return seriesFromText(text, limit) ?? seriesFromRows(stmts, id, range);
}

/** The range read row by row: the check on `seriesFromText`'s input, never needed so far. */
function seriesFromRows(stmts: HistoryStatements, id: string, range: HistoryRange): HistoryJson {
  const rows = stmts.rows.all(id, range.startUs, range.endUs, range.limitPerElement + 1);
  const truncated = rows.length > range.limitPerElement;
  const n = truncated ? range.limitPerElement : rows.length;
  const parts: string[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const row = rows[i];
    parts[i] = vqtJson(row[1], row[2], row[0]);
  }
  return { json: `[${parts.join(",")}]`, count: n, truncated };
}
