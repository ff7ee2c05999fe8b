import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "./history-read.js";
import type { WriteBackItem, WriteBackResult } from "./write-back.js";

/**
 * What a replica answers for the connectors it runs. `write` is undefined when it does not run the
 * connector (no answer); `readHistory` is undefined when the connector reads no history (the answer is
 * then "nothing to add").
 */
export interface ConnectorRelayHandlers {
  /** This replica runs `connector`: requests for it are worth receiving in full. */
  runs(connector: string): boolean;
  write(connector: string, items: readonly WriteBackItem[]): Promise<WriteBackResult[]> | undefined;
  readHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[]> | undefined;
}

/**
 * Carries what only the replica running a connector can do (write-back, history read-through) from a
 * replica that does not run it to the one that does (PostgreSQL NOTIFY in
 * store/postgres/pg-connector-relay.ts). A port, so the framework never imports the database driver.
 */
export interface ConnectorRelay {
  /**
   * Results from the replica running `connector`, in item order; a refusal for every item when none
   * answered within `timeoutMs` or the request cannot be carried.
   */
  forward(connector: string, items: readonly WriteBackItem[], timeoutMs: number): Promise<WriteBackResult[]>;
  /**
   * History from the replica running `connector`, in item order; undefined when none answered within
   * `timeoutMs` (no replica runs it, or none can read history) or the request cannot be carried.
   */
  forwardHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
    timeoutMs: number,
  ): Promise<HistoryReadResult[] | undefined>;
  /** Answers requests from other replicas for the connectors this replica runs. */
  serve(handlers: ConnectorRelayHandlers): void;
  close(): Promise<void>;
}
