import type pg from "pg";
import type { LeaderElection, LeaderLease } from "../../domain/leadership.js";
import { getLogger } from "../../observability/logger.js";
import { endSession, openSession } from "./pg-session.js";

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
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly held = new Map<string, Held>();
  private closed = false;

  constructor(private readonly connectionString: string) {}

  async tryAcquire(key: string): Promise<LeaderLease | undefined> {
    if (this.closed) return undefined;
    if (this.held.has(key)) throw new Error(`leadership of ${key} is already held by this process`);
    const client = await this.connection();
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok",
      [KEY_NAMESPACE + key],
    );
    if (!rows[0]?.ok) return undefined;
    if (client !== this.client) return undefined;
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
        if (client !== this.client) return;
        await client
          .query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [KEY_NAMESPACE + key])
          .catch((err: unknown) => log.warn({ exception: err, key }, "Could not release a leadership lock"));
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    this.loseAll("closing");
    if (client) {
      // Ending the session frees every lock; bounded, as ending a dead connection may never settle.
      await endSession(client);
    }
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    const client = await openSession({
      connectionString: this.connectionString,
      applicationName: "i3xd-leadership",
      onLost: (lostClient, err) => this.lost(lostClient, err),
    });
    if (this.closed) {
      client.end().catch(() => {});
      throw new Error("leader election closed");
    }
    this.client = client;
    return client;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (client !== this.client) return;
    this.client = undefined;
    client.end().catch(() => {});
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
