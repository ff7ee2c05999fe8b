/**
 * Which replica runs a singleton task (a connector): a port, implemented with PostgreSQL advisory locks
 * (store/postgres/pg-leadership.ts) when replicas share a database, and by "always this process" otherwise.
 */
export interface LeaderLease {
  /** Settles, with the reason, once the leadership is gone (the lock's connection died); never rejects. */
  readonly lost: Promise<string>;
  /** Gives the leadership up; `lost` settles too. */
  release(): Promise<void>;
}

export interface LeaderElection {
  /**
   * The leadership of `key` when no other replica holds it, else undefined. Throws when the question
   * cannot be asked (database unreachable): the caller retries as it would after a "no".
   */
  tryAcquire(key: string): Promise<LeaderLease | undefined>;
  /** Releases every lease; the process no longer leads anything. */
  close(): Promise<void>;
}

/** One process alone (SQLite): it always leads. */
export class SoleLeader implements LeaderElection {
  async tryAcquire(): Promise<LeaderLease> {
    let settle: (reason: string) => void = () => {};
    const lost = new Promise<string>((resolve) => {
      settle = resolve;
    });
    return {
      lost,
      release: async () => settle("released"),
    };
  }

  async close(): Promise<void> {}
}
