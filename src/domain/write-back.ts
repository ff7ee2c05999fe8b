/** One value a client asked to write to an element a connector owns (`source`: its `system.source`). */
export interface WriteBackItem {
  elementId: string;
  value: unknown;
  source: unknown;
}

export type WriteBackResult = { ok: true } | { ok: false; status: number; detail: string };

/**
 * Carries a write-back from a replica that does not run the connector to the one that does (PostgreSQL
 * NOTIFY in store/postgres/pg-write-relay.ts). A port, so the framework never imports the database driver.
 */
export interface WriteBackRelay {
  /**
   * Results from the replica running `connector`, in item order; a refusal for every item when none
   * answered within `timeoutMs` or the request cannot be carried.
   */
  forward(connector: string, items: readonly WriteBackItem[], timeoutMs: number): Promise<WriteBackResult[]>;
  /**
   * Answers requests from other replicas: `handler` gives results for a connector this replica runs, and
   * undefined for one it does not (the replica that runs it answers).
   */
  serve(
    handler: (connector: string, items: readonly WriteBackItem[]) => Promise<WriteBackResult[]> | undefined,
  ): void;
  close(): Promise<void>;
}
