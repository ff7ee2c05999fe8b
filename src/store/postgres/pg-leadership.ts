import type { LeaderElection, LeaderLease } from "../../domain/leadership.js";
import { getLogger } from "../../observability/logger.js";
import { LazySession } from "./pg-session.js";

const log = getLogger("i3xd.leadership");

/** Keeps these locks apart from any other advisory lock an operator's tools may take on the database. */
const KEY_NAMESPACE = "i3xd.leader:";

interface Held {
  key: string;
  settle: (reason: string) => void;
}

/**
 * Leadership among replicas with PostgreSQL session advisory locks, all held on one dedicated connection
 * (not a pool client: a lock belongs to the session that took it). A replica that dies ends its session,
 * which frees its locks, so a standby's next `tryAcquire` wins. When the connection is lost, every lease
 * is lost with it (the server may already have freed the locks for another replica); the next
 * `tryAcquire` connects again.
 */
export class PgLeaderElection implements LeaderElection {
  private readonly session: LazySession;
  private readonly held = new Map<string, Held>();
  private closed = false;

  constructor(connectionString: string) {
    this.session = new LazySession({
      connectionString,
      applicationName: "i3xd-leadership",
      owner: "leader election",
      onLost: (err) => this.lost(err),
    });
  }

  async tryAcquire(key: string): Promise<LeaderLease | undefined> {
    if (this.closed) return undefined;
    if (this.held.has(key)) throw new Error(`leadership of ${key} is already held by this process`);
    const client = await this.session.get();
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok",
      [KEY_NAMESPACE + key],
    );
    if (!rows[0]?.ok) return undefined;
    if (client !== this.session.current) return undefined;
    let settle: (reason: string) => void = () => {};
    const lost = new Promise<string>((resolve) => {
      settle = resolve;
    });
    const held: Held = { key, settle };
    this.held.set(key, held);
    return {
      lost,
      release: async () => {
        if (this.held.get(key) !== held) return;
        this.held.delete(key);
        settle("released");
        if (client !== this.session.current) return;
        await client
          .query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [KEY_NAMESPACE + key])
          .catch((err: unknown) => log.warn({ exception: err, key }, "Could not release a leadership lock"));
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    // Ending the session frees every lock; `close` lets the session go at once, before the leases hear of it.
    const ending = this.session.close();
    this.loseAll("closing");
    await ending;
  }

  private lost(err?: Error): void {
    if (this.held.size > 0)
      log.warn(
        { exception: err, leases: this.held.size },
        "Leadership connection lost; giving up leadership",
      );
    this.loseAll(`leadership connection lost${err ? `: ${err.message}` : ""}`);
  }

  private loseAll(reason: string): void {
    const held = [...this.held.values()];
    this.held.clear();
    for (const h of held) h.settle(reason);
  }
}
