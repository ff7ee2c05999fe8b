import type pg from "pg";
import { halfJitterDelayMs } from "../../domain/backoff.js";
import {
  type ChangeFeed,
  type ChangeListener,
  LocalChangeFeed,
  type ValueChange,
} from "../../domain/changes.js";
import type { Vqt } from "../../domain/model.js";
import { getLogger } from "../../observability/logger.js";
import { CHANGES_CHANNEL, type ChangeKey, type ChangeNotice, decodeNotice } from "./pg-notify.js";
import { endSession, openSession } from "./pg-session.js";

const log = getLogger("i3xd.changes");

/** What the feed reads the notified points from: the PostgreSQL store itself, below any cache. */
export interface PointReader {
  readonly origin: string;
  readonly connectionString: string;
  getPointsAt(keys: readonly ChangeKey[]): Promise<(Vqt | undefined)[]>;
}

/** The cache in front of the store (`CachedStore`), dropped where other replicas wrote. */
export interface CacheInvalidation {
  invalidateValues(ids: Iterable<string>): void;
  invalidateAll(): void;
}

export interface PgChangeFeedOptions {
  reader: PointReader;
  cache?: CacheInvalidation;
  /** Reconnect delays: doubling from `minMs` to `maxMs`, with jitter. */
  reconnect?: { minMs: number; maxMs: number };
}

/**
 * The change feed of a replica among several on one PostgreSQL database. Local writes are delivered to
 * local listeners synchronously, as `LocalChangeFeed` does; the PostgreSQL store has already NOTIFYed them
 * inside the write transaction (so a notification exists exactly when the write committed). Notifications
 * from other replicas (a different origin) arrive on one dedicated LISTEN connection: the cached values of
 * the named elements are dropped at once, then the named points are read in one statement and published to
 * the local listeners (subscriptions), in the order they were written.
 *
 * The LISTEN connection reconnects with backoff. Notifications sent while it was down are lost to this
 * replica, so every cached entry is dropped when it goes and again when it comes back; subscribers here miss
 * the changes of that gap (logged), as they would across a restart.
 */
export class PgChangeFeed implements ChangeFeed {
  private readonly local = new LocalChangeFeed();
  private readonly reader: PointReader;
  private readonly cache: CacheInvalidation | undefined;
  private readonly backoff: { minMs: number; maxMs: number };
  private client: pg.Client | undefined;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lostAt: number | undefined;
  private readonly pending: ChangeNotice[] = [];
  private draining: Promise<void> | undefined;
  private received = 0;

  private constructor(options: PgChangeFeedOptions) {
    this.reader = options.reader;
    this.cache = options.cache;
    this.backoff = options.reconnect ?? { minMs: 100, maxMs: 5000 };
  }

  /** Connects and LISTENs before returning, so no write made after start-up is missed. */
  static async start(options: PgChangeFeedOptions): Promise<PgChangeFeed> {
    const feed = new PgChangeFeed(options);
    await feed.connect();
    return feed;
  }

  publish(changes: readonly ValueChange[]): void {
    this.local.publish(changes);
  }

  subscribe(listener: ChangeListener): () => void {
    return this.local.subscribe(listener);
  }

  /** True while the LISTEN connection is up. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Notifications from other replicas taken in so far (tests, diagnostics). */
  get receivedCount(): number {
    return this.received;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      await endSession(client);
    }
    await this.draining;
  }

  private async connect(): Promise<void> {
    const client = await openSession({
      connectionString: this.reader.connectionString,
      applicationName: "i3xd-changes",
      onLost: (lostClient, err) => this.lost(lostClient, err),
      listen: { channel: CHANGES_CHANNEL, onNotification: (payload) => this.onNotification(payload) },
    });
    if (this.closed) {
      client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.attempts = 0;
    if (this.lostAt !== undefined) {
      // Writes of the gap were never announced here: nothing cached can be trusted.
      this.cache?.invalidateAll();
      log.info({ down_ms: Date.now() - this.lostAt }, "Change notifications restored");
      this.lostAt = undefined;
    }
  }

  private lost(client: pg.Client, err?: Error): void {
    if (client !== this.client) return;
    this.client = undefined;
    client.end().catch(() => {});
    if (this.closed) return;
    this.lostAt = Date.now();
    this.cache?.invalidateAll();
    log.warn(
      { exception: err },
      "Change notification connection lost; reconnecting (changes made elsewhere meanwhile are not delivered here)",
    );
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const delayMs = halfJitterDelayMs(this.attempts, this.backoff.minMs, this.backoff.maxMs);
    this.attempts++;
    this.timer = setTimeout(() => {
      this.connect().catch((err: unknown) => {
        if (this.attempts === 1 || this.attempts % 10 === 0) {
          log.warn({ exception: err, attempts: this.attempts }, "Change notifications still unavailable");
        }
        this.scheduleReconnect();
      });
    }, delayMs);
    this.timer.unref();
  }

  private onNotification(payload: string | undefined): void {
    const notice = decodeNotice(payload);
    if (notice === undefined || notice.origin === this.reader.origin) return;
    this.received++;
    // Dropped before anything else runs, so a read on this replica after the notification sees the write.
    if (notice.model || notice.unlisted) this.cache?.invalidateAll();
    else if (notice.changes.length > 0) this.cache?.invalidateValues(notice.changes.map((c) => c.elementId));
    if (notice.changes.length === 0) return;
    this.pending.push(notice);
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Reads the points of every waiting notice in one statement, then publishes them notice by notice. */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const notices = this.pending.splice(0);
      const keys = notices.flatMap((n) => n.changes);
      let points: (Vqt | undefined)[];
      try {
        points = await this.reader.getPointsAt(keys);
      } catch (err) {
        log.warn(
          { exception: err, changes: keys.length },
          "Could not read values announced by another replica; their subscribers here miss them",
        );
        continue;
      }
      let i = 0;
      for (const notice of notices) {
        const changes: ValueChange[] = [];
        for (const key of notice.changes) {
          const vqt = points[i++];
          if (vqt !== undefined) changes.push({ elementId: key.elementId, vqt });
        }
        try {
          this.local.publish(changes);
        } catch (err) {
          log.error({ exception: err }, "A change listener failed");
        }
      }
    }
  }
}
