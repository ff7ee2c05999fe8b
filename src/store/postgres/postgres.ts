import { randomBytes } from "node:crypto";
import pg from "pg";
import {
  HAS_CHILDREN,
  HAS_COMPONENT,
  HAS_PARENT,
  type Namespace,
  type ObjectRecord,
  type ObjectType,
  type Quality,
  type Relationship,
  type RelationshipType,
  type Vqt,
} from "../../domain/model.js";
import { formatTimestampUs } from "../../domain/time.js";
import type { ModelDocument } from "../../model/format.js";
import { getLogger } from "../../observability/logger.js";
import {
  attachDatabasePool,
  storeHistoryRowsEstimate,
  storeRetentionDeleted,
  storeSizeBytes,
} from "../../observability/metrics.js";
import { commonCutoffUs, cutoffUsFor, KEEP_FOREVER, type RetentionPolicy, retains } from "../retention.js";
import {
  byId,
  modelRowMappers,
  NO_POINTS,
  pointHeadSql,
  type Row,
  seriesFromText,
  toPointWrite,
  toRelationship,
  toRelationshipType,
} from "../rows.js";
import {
  type HistoryJson,
  type HistoryRange,
  isOutOfSpace,
  type PointWrite,
  type Store,
  StoreFullError,
  StoreUnavailableError,
  type WriteMode,
} from "../store.js";
import { POSTGRES_MIGRATIONS } from "./migrations/postgres.js";
import {
  CHANGES_CHANNEL,
  type ChangeKey,
  encodeChanges,
  encodeModelChange,
  PAYLOAD_MAX_BYTES,
} from "./pg-notify.js";

const log = getLogger("i3xd.store");

/** pg hands `json` columns over parsed already. */
const { toObject, toObjectType } = modelRowMappers((column) => column);

const DAY_US = 86_400_000_000;
/** Rows one retention delete removes: a short transaction, so concurrent writes never wait long. */
const DELETE_BATCH_ROWS = 5000;

/** Daily history partitions kept ready ahead of the clock, and created behind it at start. */
const PARTITIONS_AHEAD_DAYS = 7;
const PARTITIONS_BEHIND_DAYS = 1;
const MAINTENANCE_INTERVAL_MS = 3_600_000;
/** Partition DDL waits this long for its lock, then gives up until the next round (never stalls traffic). */
const DDL_LOCK_TIMEOUT = "2s";
/** Points per INSERT statement: large batches go out as several multi-row statements in one transaction. */
const WRITE_CHUNK = 5000;
/** Advisory locks: `pg_advisory_lock(hashtext('i3xd'), n)`. */
const LOCK_MIGRATIONS = 1;
const LOCK_MAINTENANCE = 2;

/** bigint columns hold microsecond timestamps, exact as JavaScript numbers until the year 2255. */
const TYPES = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as never,
};

/** Errors of the connection rather than of the statement: the database is gone or the link was cut. */
const CONNECTION_CODES = new Set([
  "57P01", // admin_shutdown (pg_terminate_backend, server stop)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down)
  "53300", // too_many_connections
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);
const CONNECTION_MESSAGES =
  /Connection terminated|terminating connection|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i;
/** Transient conflicts between concurrent transactions that a second attempt resolves. */
const CONFLICT_CODES = new Set(["40P01", "40001"]);

const COMMIT_UNKNOWN = Symbol("commitOutcomeUnknown");
/** Set on errors of opening a connection: whatever the server said, it did not let us in. */
const CONNECT_FAILED = Symbol("connectFailed");

export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (CONNECT_FAILED in err) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08"))) return true;
  return CONNECTION_MESSAGES.test(err.message);
}

export interface PostgresStoreOptions {
  connectionString: string;
  /** Most pool clients (I3XD_PG_POOL_MAX). */
  poolMax?: number;
  /** What history retention removes (I3XD_HISTORY_RETENTION, …_BY_TYPE); default: nothing. */
  retention?: RetentionPolicy;
  /** How often partitions, retention and the store metrics are looked after (default one minute). */
  upkeepIntervalMs?: number;
  /** How long a request waits for a connection before the store reports itself unavailable. */
  connectTimeoutMs?: number;
}

/** Internal row of a point write: the value serialised once. */
interface PointRow {
  id: string;
  ts: number;
  value: string;
  quality: Quality;
}

/**
 * The store for several replicas on one PostgreSQL database. Every read is one statement for the whole batch
 * (`= ANY($1)`, `unnest`), every write one transaction of multi-row statements. History is range-partitioned
 * by day and maintained here (partitions created ahead, whole partitions dropped by retention). Each write
 * transaction also NOTIFYs the changed element ids, which the change feed of every replica turns into cache
 * invalidations and subscription updates (`pg-change-feed.ts`). Design: docs/adr/008-postgres-store.md.
 */
export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  /** Tags this process's notifications, so its own change feed skips what it already delivered locally. */
  readonly origin = randomBytes(9).toString("base64url");
  readonly connectionString: string;
  private readonly pool: pg.Pool;
  private readonly retention: RetentionPolicy;
  private readonly upkeepIntervalMs: number;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private detachPool: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  private poolErrorLoggedAt = 0;
  private poolErrorsSuppressed = 0;

  constructor(options: PostgresStoreOptions) {
    this.connectionString = options.connectionString;
    this.retention = options.retention ?? KEEP_FOREVER;
    this.upkeepIntervalMs = options.upkeepIntervalMs ?? MAINTENANCE_INTERVAL_MS;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolMax ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "i3xd",
      types: TYPES,
    });
    // An idle client whose connection dies emits here; unhandled, it would crash the process. The pool has
    // already discarded the client and opens a new one on the next request.
    this.pool.on("error", (err) => this.onPoolError(err));
    // The pool listens for errors only while a client is idle. A client in use whose connection dies
    // outside a statement — between two statements, or in the very chunk that completed its start-up,
    // before the caller has it — would emit an unhandled 'error' and end the process. With this listener
    // its next statement fails instead (a connection error: the client is then destroyed, not pooled).
    this.pool.on("connect", (client) => {
      client.on("error", () => {});
    });
  }

  private onPoolError(err: Error): void {
    const now = Date.now();
    if (now - this.poolErrorLoggedAt < 10_000) {
      this.poolErrorsSuppressed++;
      return;
    }
    log.warn(
      { exception: err, suppressed: this.poolErrorsSuppressed },
      "PostgreSQL connection lost; the pool reconnects on demand",
    );
    this.poolErrorLoggedAt = now;
    this.poolErrorsSuppressed = 0;
  }

  async init(): Promise<void> {
    await this.migrate();
    try {
      await this.maintainHistory();
    } catch (err) {
      // The default partition takes every write until the next round succeeds.
      log.warn({ exception: err }, "History partition upkeep failed; retrying later");
    }
    this.maintenanceTimer = setInterval(() => {
      this.maintainHistory().catch((err: unknown) =>
        log.warn({ exception: err }, "History partition upkeep failed; retrying later"),
      );
    }, this.upkeepIntervalMs);
    this.maintenanceTimer.unref();
    this.detachPool = attachDatabasePool(() => ({
      total: this.pool.totalCount,
      idle: this.pool.idleCount,
      waiting: this.pool.waitingCount,
    }));
  }

  /** Replicas starting together: the first takes the lock and migrates, the others wait and find it done. */
  private async migrate(): Promise<void> {
    await this.withClient(async (client) => {
      await client.query("SELECT pg_advisory_lock(hashtext('i3xd'), $1)", [LOCK_MIGRATIONS]);
      try {
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version integer PRIMARY KEY,
          name text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now())`);
        const { rows } = await client.query<{ v: number }>(
          "SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations",
        );
        const current = rows[0].v;
        const known = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]?.version ?? 0;
        if (current > known) {
          log.warn({ version: current, known }, "The database schema is newer than this server knows");
        }
        for (const migration of POSTGRES_MIGRATIONS) {
          if (migration.version <= current) continue;
          await client.query("BEGIN");
          try {
            await client.query(migration.sql);
            await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
              migration.version,
              migration.name,
            ]);
            await client.query("COMMIT");
          } catch (err) {
            await client.query("ROLLBACK").catch(() => {});
            throw err;
          }
          log.info({ version: migration.version, name: migration.name }, "Applied store migration");
        }
      } finally {
        await client.query("SELECT pg_advisory_unlock(hashtext('i3xd'), $1)", [LOCK_MIGRATIONS]);
      }
    });
  }

  /**
   * Creates the daily history partitions from yesterday to a week ahead and applies the retention: drops
   * partitions wholly older than what every object keeps, purges those points from the default partition,
   * then deletes in batches, element by element, the older points left in the partitions still there. One replica at a time (the others skip the round); each step is its own short transaction
   * (DDL with a lock timeout), so a busy table postpones a step to the next round rather than stalling
   * requests. Refreshes the store metrics every round, on every replica.
   */
  async maintainHistory(
    nowMs = Date.now(),
  ): Promise<{ created: string[]; dropped: string[]; purged: number; deleted: number }> {
    const result = { created: [] as string[], dropped: [] as string[], purged: 0, deleted: 0 };
    await this.withClient(async (client) => {
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock(hashtext('i3xd'), $1) AS locked",
        [LOCK_MAINTENANCE],
      );
      if (!rows[0].locked) return;
      try {
        const today = Math.floor((nowMs * 1000) / DAY_US) * DAY_US;
        const cutoffUs = commonCutoffUs(this.retention, nowMs);
        const existing = await listPartitions(client);
        for (let day = -PARTITIONS_BEHIND_DAYS; day <= PARTITIONS_AHEAD_DAYS; day++) {
          const lo = today + day * DAY_US;
          const hi = lo + DAY_US;
          const name = partitionName(lo);
          if (existing.has(name) || (cutoffUs !== undefined && hi <= cutoffUs)) continue;
          if (await this.ddlStep(client, `create ${name}`, () => createPartition(client, name, lo, hi))) {
            result.created.push(name);
          }
        }
        if (cutoffUs !== undefined) {
          for (const [name, hi] of existing) {
            if (hi > cutoffUs) continue;
            const rowsIn = await partitionRows(client, name);
            if (await this.ddlStep(client, `drop ${name}`, () => client.query(`DROP TABLE ${name}`))) {
              result.dropped.push(name);
              storeRetentionDeleted.inc({ reason: "retention" }, rowsIn);
            }
          }
          const purged = await client.query("DELETE FROM history_default WHERE ts_us < $1", [cutoffUs]);
          result.purged = purged.rowCount ?? 0;
          storeRetentionDeleted.inc({ reason: "retention" }, result.purged);
        }
        if (retains(this.retention)) result.deleted = await this.deleteByType(client, nowMs);
      } finally {
        await client.query("SELECT pg_advisory_unlock(hashtext('i3xd'), $1)", [LOCK_MAINTENANCE]);
      }
    });
    if (result.created.length > 0 || result.dropped.length > 0 || result.purged > 0 || result.deleted > 0) {
      log.info(result, "History partitions maintained");
    }
    await this.measure().catch((err: unknown) =>
      log.debug({ exception: err }, "Store metrics not refreshed"),
    );
    return result;
  }

  /**
   * What whole partitions could not remove: each element's points older than its type's period (or the
   * default), in the partitions still there. Element by element, so each delete is an index range on the
   * primary key, in batches of `DELETE_BATCH_ROWS`, each its own statement.
   */
  private async deleteByType(client: pg.PoolClient, nowMs: number): Promise<number> {
    const { rows } = await client.query<{ element_id: string; type_element_id: string }>(
      "SELECT element_id, type_element_id FROM objects",
    );
    let deleted = 0;
    for (const { element_id, type_element_id } of rows) {
      const cutoffUs = cutoffUsFor(this.retention, type_element_id, nowMs);
      if (cutoffUs === undefined) continue;
      for (;;) {
        const { rowCount } = await client.query(
          `DELETE FROM history WHERE (element_id, ts_us) IN (
             SELECT element_id, ts_us FROM history WHERE element_id = $1 AND ts_us < $2 LIMIT ${DELETE_BATCH_ROWS})`,
          [element_id, cutoffUs],
        );
        deleted += rowCount ?? 0;
        storeRetentionDeleted.inc({ reason: "retention" }, rowCount ?? 0);
        if ((rowCount ?? 0) < DELETE_BATCH_ROWS) break;
      }
    }
    return deleted;
  }

  /**
   * `store_size_bytes` and `store_history_rows_estimate`, from the database's own statistics: the live
   * row counts the statistics collector keeps per partition (no scan, current without an ANALYZE).
   */
  private async measure(): Promise<void> {
    const { rows } = await this.pool.query<{ size: string; rows: string }>(
      `SELECT pg_database_size(current_database())::text AS size,
              (SELECT coalesce(sum(s.n_live_tup), 0)::text
                 FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
                WHERE i.inhparent = 'history'::regclass) AS rows`,
    );
    storeSizeBytes.set({ store: "postgres" }, Number(rows[0].size));
    storeHistoryRowsEstimate.set(Number(rows[0].rows));
  }

  /** Runs one DDL step in its own transaction; false (logged) when it could not be done this round. */
  private async ddlStep(client: pg.PoolClient, what: string, step: () => Promise<unknown>): Promise<boolean> {
    await client.query("BEGIN");
    try {
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      await step();
      await client.query("COMMIT");
      return true;
    } catch (err) {
      if (isConnectionError(err)) throw err;
      await client.query("ROLLBACK");
      log.warn({ exception: err, step: what }, "History partition step postponed to the next round");
      return false;
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.maintenanceTimer);
      this.detachPool?.();
      await this.pool.end();
    })();
    return this.closing;
  }

  async ping(): Promise<void> {
    await this.withRetry(() => this.once((c) => c.query("SELECT 1")));
  }

  connectionCount(): number {
    return this.pool.totalCount;
  }

  async isEmpty(): Promise<boolean> {
    const rows = await this.rows(
      "i3xd_is_empty",
      "SELECT EXISTS (SELECT 1 FROM object_types) OR EXISTS (SELECT 1 FROM objects) AS present",
    );
    return rows[0].present !== true;
  }

  async listNamespaces(): Promise<Namespace[]> {
    const rows = await this.rows("i3xd_namespaces", "SELECT uri, display_name FROM namespaces ORDER BY seq");
    return rows.map((r) => ({ uri: r.uri as string, displayName: r.display_name as string }));
  }

  async listObjectTypes(namespaceUri?: string): Promise<ObjectType[]> {
    if (namespaceUri !== undefined && !isStorable(namespaceUri)) return [];
    const rows =
      namespaceUri === undefined
        ? await this.rows("i3xd_object_types_all", "SELECT * FROM object_types ORDER BY seq")
        : await this.rows(
            "i3xd_object_types_ns",
            "SELECT * FROM object_types WHERE namespace_uri = $1 ORDER BY seq",
            [namespaceUri],
          );
    return rows.map(toObjectType);
  }

  async getObjectTypes(requested: readonly string[]): Promise<Map<string, ObjectType>> {
    const ids = storable(requested);
    if (ids.length === 0) return new Map();
    const rows = await this.rows(
      "i3xd_object_types_ids",
      "SELECT * FROM object_types WHERE element_id = ANY($1::text[])",
      [ids],
    );
    return byId(rows, toObjectType);
  }

  async listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]> {
    if (namespaceUri !== undefined && !isStorable(namespaceUri)) return [];
    const rows =
      namespaceUri === undefined
        ? await this.rows("i3xd_rel_types_all", "SELECT * FROM relationship_types ORDER BY seq")
        : await this.rows(
            "i3xd_rel_types_ns",
            "SELECT * FROM relationship_types WHERE namespace_uri = $1 ORDER BY seq",
            [namespaceUri],
          );
    return rows.map(toRelationshipType);
  }

  async getRelationshipTypes(requested: readonly string[]): Promise<Map<string, RelationshipType>> {
    const ids = storable(requested);
    if (ids.length === 0) return new Map();
    const rows = await this.rows(
      "i3xd_rel_types_ids",
      "SELECT * FROM relationship_types WHERE element_id = ANY($1::text[])",
      [ids],
    );
    return byId(rows, toRelationshipType);
  }

  async listObjects(filter: { typeElementId?: string; root?: boolean } = {}): Promise<ObjectRecord[]> {
    if (filter.typeElementId !== undefined && !isStorable(filter.typeElementId)) return [];
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.typeElementId !== undefined) {
      values.push(filter.typeElementId);
      where.push("type_element_id = $1");
    }
    if (filter.root !== undefined) where.push(filter.root ? "parent_id IS NULL" : "parent_id IS NOT NULL");
    const name = `i3xd_objects_${filter.typeElementId !== undefined ? "t" : ""}${filter.root === undefined ? "" : filter.root ? "r" : "c"}`;
    const sql = `SELECT * FROM objects${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY seq`;
    return (await this.rows(name, sql, values)).map(toObject);
  }

  async getObjects(requested: readonly string[]): Promise<Map<string, ObjectRecord>> {
    const ids = storable(requested);
    if (ids.length === 0) return new Map();
    const rows = await this.rows(
      "i3xd_objects_ids",
      "SELECT * FROM objects WHERE element_id = ANY($1::text[])",
      [ids],
    );
    return byId(rows, toObject);
  }

  async getRelationships(requested: readonly string[], relationshipType?: string): Promise<Relationship[]> {
    const sourceIds = storable(requested);
    if (sourceIds.length === 0 || (relationshipType !== undefined && !isStorable(relationshipType)))
      return [];
    const rows =
      relationshipType === undefined
        ? await this.rows(
            "i3xd_rels",
            `SELECT source_id, relationship_type, target_id FROM relationships
              WHERE source_id = ANY($1::text[]) ORDER BY source_id, relationship_type, target_id`,
            [sourceIds],
          )
        : await this.rows(
            "i3xd_rels_type",
            `SELECT source_id, relationship_type, target_id FROM relationships
              WHERE source_id = ANY($1::text[]) AND relationship_type = $2 ORDER BY source_id, target_id`,
            [sourceIds, relationshipType],
          );
    return rows.map(toRelationship);
  }

  async getCurrentValues(requested: readonly string[]): Promise<Map<string, Vqt>> {
    const out = new Map<string, Vqt>();
    const ids = storable(requested);
    if (ids.length === 0) return out;
    const rows = await this.arrays(
      "i3xd_current_ids",
      "SELECT element_id, ts_us, value, quality FROM current_values WHERE element_id = ANY($1::text[])",
      [ids],
    );
    for (const r of rows) {
      out.set(r[0] as string, {
        value: r[2],
        quality: r[3] as Quality,
        timestamp: formatTimestampUs(r[1] as number),
      });
    }
    return out;
  }

  async getHistoryJson(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    const out = new Map<string, HistoryJson>();
    const unique = [...new Set(ids)];
    const ask = storable(unique);
    for (const id of unique) out.set(id, NO_POINTS);
    if (ask.length === 0) return out;
    const { startUs, endUs, limitPerElement: limit } = range;
    const rows = await this.arrays("i3xd_history_series", HISTORY_SERIES_SQL, [
      ask,
      startUs,
      endUs,
      limit + 1,
    ]);
    for (const [id, text] of rows as [string, string | null][]) {
      if (text === null) continue;
      // The aggregate's ORDER BY and the json type's input check make the form certain here.
      const series = seriesFromText(text, limit);
      if (!series) throw new Error(`history of ${id} came back in an unexpected form`);
      out.set(id, series);
    }
    return out;
  }

  /**
   * The stored points at exactly these (element, timestamp) keys, in the order asked; `undefined` where no
   * such point is stored (any more). What a change notification names, read in one statement.
   */
  async getPointsAt(keys: readonly ChangeKey[]): Promise<(Vqt | undefined)[]> {
    const out: (Vqt | undefined)[] = new Array(keys.length).fill(undefined);
    if (keys.length === 0) return out;
    const rows = await this.arrays(
      "i3xd_points_at",
      `SELECT k.n, h.ts_us, h.value, h.quality
         FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS k(id, ts, n)
         JOIN history h ON h.element_id = k.id AND h.ts_us = k.ts`,
      [keys.map((k) => k.elementId), keys.map((k) => k.tsUs)],
    );
    for (const r of rows) {
      out[(r[0] as number) - 1] = {
        value: r[2],
        quality: r[3] as Quality,
        timestamp: formatTimestampUs(r[1] as number),
      };
    }
    return out;
  }

  async writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    if (points.length === 0) return [];
    checkTimestamps(points);
    const plan = planPoints(points, mode);
    const single = singleStatementWrite(plan, points, mode, this.origin);
    let changed: string[];
    if (single === undefined) {
      changed = await this.transaction(async (client) => {
        const keys = await putPoints(client, plan, points, mode);
        await notify(client, encodeChanges(this.origin, keys));
        return keys.map((k) => k.elementId);
      });
    } else {
      // The usual batch: both tables and the notification in one statement, its own transaction, one round
      // trip. A connection lost while it runs leaves its outcome unknown: reported (503), not repeated.
      changed = await this.withRetry(() =>
        this.once(async (client) => {
          try {
            const { rows } = await client.query<{ ids: string[] | null }>(single);
            return rows.flatMap((r) => r.ids ?? []);
          } catch (err) {
            if (isConnectionError(err)) Object.defineProperty(err, COMMIT_UNKNOWN, { value: true });
            throw err;
          }
        }),
      );
    }
    if (mode === "current") return [...points];
    const became = new Set(changed);
    return points.filter((p) => became.has(p.elementId) && plan.becoming.get(p.elementId) === p);
  }

  async importModel(model: ModelDocument): Promise<void> {
    const history = model.history?.map(toPointWrite) ?? [];
    const values = model.values?.map(toPointWrite) ?? [];
    await this.transaction(async (client) => {
      const namespaces = lastWins(model.namespaces, (n) => n.uri);
      await client.query(
        `INSERT INTO namespaces (uri, display_name) SELECT * FROM unnest($1::text[], $2::text[])
          ON CONFLICT (uri) DO UPDATE SET display_name = EXCLUDED.display_name`,
        [namespaces.map((n) => n.uri), namespaces.map((n) => n.displayName)],
      );
      const types = lastWins(model.objectTypes, (t) => t.elementId);
      await client.query(
        `INSERT INTO object_types (element_id, display_name, namespace_uri, source_type_id, version, schema, related)
          SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::json[], $7::json[])
          ON CONFLICT (element_id) DO UPDATE SET display_name = EXCLUDED.display_name,
            namespace_uri = EXCLUDED.namespace_uri, source_type_id = EXCLUDED.source_type_id,
            version = EXCLUDED.version, schema = EXCLUDED.schema, related = EXCLUDED.related`,
        [
          types.map((t) => t.elementId),
          types.map((t) => t.displayName),
          types.map((t) => t.namespaceUri),
          types.map((t) => t.sourceTypeId ?? t.elementId),
          types.map((t) => t.version ?? null),
          types.map((t) => JSON.stringify(t.schema)),
          types.map((t) => (t.related ? JSON.stringify(t.related) : null)),
        ],
      );
      const relTypes = lastWins(model.relationshipTypes, (t) => t.elementId);
      await client.query(
        `INSERT INTO relationship_types (element_id, display_name, namespace_uri, relationship_id, reverse_of)
          SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
          ON CONFLICT (element_id) DO UPDATE SET display_name = EXCLUDED.display_name,
            namespace_uri = EXCLUDED.namespace_uri, relationship_id = EXCLUDED.relationship_id,
            reverse_of = EXCLUDED.reverse_of`,
        [
          relTypes.map((t) => t.elementId),
          relTypes.map((t) => t.displayName),
          relTypes.map((t) => t.namespaceUri),
          relTypes.map((t) => t.relationshipId),
          relTypes.map((t) => t.reverseOf),
        ],
      );
      const objects = lastWins(model.objects, (o) => o.elementId);
      await client.query(
        `INSERT INTO objects (element_id, display_name, type_element_id, parent_id, is_extended, description,
            system, schema_extensions)
          SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::text[],
            $7::json[], $8::json[])
          ON CONFLICT (element_id) DO UPDATE SET display_name = EXCLUDED.display_name,
            type_element_id = EXCLUDED.type_element_id, parent_id = EXCLUDED.parent_id,
            is_extended = EXCLUDED.is_extended, description = EXCLUDED.description, system = EXCLUDED.system,
            schema_extensions = EXCLUDED.schema_extensions`,
        [
          objects.map((o) => o.elementId),
          objects.map((o) => o.displayName),
          objects.map((o) => o.typeElementId),
          objects.map((o) => o.parentId ?? null),
          objects.map((o) => o.isExtended === true),
          objects.map((o) => o.description ?? null),
          objects.map((o) => (o.system ? JSON.stringify(o.system) : null)),
          objects.map((o) => (o.schemaExtensions ? JSON.stringify(o.schemaExtensions) : null)),
        ],
      );
      // The hierarchy follows parentId: replace whatever an earlier import said about these objects.
      const ids = objects.map((o) => o.elementId);
      await client.query(
        `DELETE FROM relationships
          WHERE (source_id = ANY($1::text[]) AND relationship_type = $2)
             OR (target_id = ANY($1::text[]) AND relationship_type = $3)`,
        [ids, HAS_PARENT, HAS_CHILDREN],
      );
      const edges: [string, string, string][] = [];
      for (const o of objects) {
        if (!o.parentId) continue;
        edges.push([o.elementId, HAS_PARENT, o.parentId], [o.parentId, HAS_CHILDREN, o.elementId]);
      }
      if (model.relationships?.length) {
        const { rows } = await client.query<{ element_id: string; reverse_of: string }>(
          "SELECT element_id, reverse_of FROM relationship_types",
        );
        const reverse = new Map(rows.map((r) => [r.element_id, r.reverse_of]));
        for (const r of model.relationships) {
          edges.push([r.sourceId, r.relationshipType, r.targetId]);
          const back = reverse.get(r.relationshipType);
          if (back) edges.push([r.targetId, back, r.sourceId]);
        }
      }
      if (edges.length > 0) {
        // Sorted, so concurrent imports take row locks in one order and cannot deadlock each other.
        edges.sort(compareEdges);
        await client.query(
          `INSERT INTO relationships (source_id, relationship_type, target_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
          [edges.map((e) => e[0]), edges.map((e) => e[1]), edges.map((e) => e[2])],
        );
      }
      await client.query(
        `UPDATE objects SET is_composition = NOT is_composition
          WHERE is_composition <> EXISTS (
            SELECT 1 FROM relationships r WHERE r.source_id = objects.element_id AND r.relationship_type = $1)`,
        [HAS_COMPONENT],
      );
      if (history.length > 0) await putPoints(client, planPoints(history, "history"), history, "history");
      // Initial values never override newer live values, so re-importing a model after the plant has been
      // running keeps what it wrote since.
      if (values.length > 0) await putPoints(client, planPoints(values, "history"), values, "history");
      await notify(client, [encodeModelChange(this.origin)]);
    });
  }

  async removeObjects(requested: readonly string[]): Promise<string[]> {
    const ids = storable(requested);
    if (ids.length === 0) return [];
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ id: string }>({
        name: "i3xd_objects_below",
        text: OBJECTS_BELOW_SQL,
        values: [ids, [HAS_COMPONENT, HAS_CHILDREN]],
      });
      const removed = rows.map((r) => r.id);
      if (removed.length === 0) return removed;
      const above = await client.query<{ source_id: string }>(
        `SELECT DISTINCT source_id FROM relationships
          WHERE relationship_type = $2 AND target_id = ANY($1::text[]) AND NOT (source_id = ANY($1::text[]))`,
        [removed, HAS_COMPONENT],
      );
      await client.query(
        "DELETE FROM relationships WHERE source_id = ANY($1::text[]) OR target_id = ANY($1::text[])",
        [removed],
      );
      await client.query("DELETE FROM current_values WHERE element_id = ANY($1::text[])", [removed]);
      await client.query("DELETE FROM history WHERE element_id = ANY($1::text[])", [removed]);
      await client.query("DELETE FROM objects WHERE element_id = ANY($1::text[])", [removed]);
      if (above.rows.length > 0) {
        await client.query(
          `UPDATE objects SET is_composition = EXISTS (
              SELECT 1 FROM relationships r WHERE r.source_id = objects.element_id AND r.relationship_type = $2)
            WHERE element_id = ANY($1::text[])`,
          [above.rows.map((r) => r.source_id), HAS_COMPONENT],
        );
      }
      // A model change, as an import is: the other replicas drop what they cached.
      await notify(client, [encodeModelChange(this.origin)]);
      return removed;
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // Plumbing

  private rows(name: string, text: string, values: unknown[] = []): Promise<Row[]> {
    return this.withRetry(() => this.once(async (c) => (await c.query<Row>({ name, text, values })).rows));
  }

  private arrays(name: string, text: string, values: unknown[]): Promise<unknown[][]> {
    return this.withRetry(() =>
      this.once(async (c) => (await c.query<unknown[]>({ name, text, values, rowMode: "array" })).rows),
    );
  }

  /** A pool client whose connect failure is marked as such (the server may answer with any error code). */
  private async checkout(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      if (err instanceof Error) Object.defineProperty(err, CONNECT_FAILED, { value: true });
      throw err;
    }
  }

  /** One statement on a pool client; a client whose connection failed is destroyed, not pooled again. */
  private async once<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.checkout();
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * One retry on a lost connection (the pool hands out a fresh one) or a deadlock; a second failure of the
   * connection kind surfaces as `StoreUnavailableError` (HTTP 503). Every operation here can be repeated:
   * reads trivially, writes because a failed transaction was rolled back. Only a connection lost during
   * COMMIT leaves the outcome unknown; that one is reported, not repeated.
   */
  private async withRetry<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        const unknownOutcome = err instanceof Error && COMMIT_UNKNOWN in err;
        const transient =
          isConnectionError(err) || CONFLICT_CODES.has(String((err as { code?: unknown }).code));
        if (attempt >= 2 || unknownOutcome || !transient || this.closing) throw translate(err);
      }
    }
  }

  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await this.once(fn);
    } catch (err) {
      throw translate(err);
    }
  }

  private transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.withRetry(async () => {
      const client = await this.checkout();
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        const result = await fn(client);
        try {
          await client.query("COMMIT");
        } catch (err) {
          if (isConnectionError(err)) Object.defineProperty(err, COMMIT_UNKNOWN, { value: true });
          throw err;
        }
        return result;
      } catch (err) {
        if (isConnectionError(err)) broken = err as Error;
        else {
          await client.query("ROLLBACK").catch((e: Error) => {
            broken = e;
          });
        }
        throw err;
      } finally {
        // A client whose connection failed is destroyed, not returned to the pool.
        client.release(broken);
      }
    });
  }
}

/**
 * PostgreSQL text cannot hold U+0000, so no stored id contains it; a requested id that does is simply not
 * there (as on SQLite), rather than an error of the statement.
 */
function isStorable(id: string): boolean {
  return !id.includes("\u0000");
}

function storable(ids: readonly string[]): readonly string[] {
  for (const id of ids) if (!isStorable(id)) return ids.filter(isStorable);
  return ids;
}

function translate(err: unknown): unknown {
  if (isOutOfSpace(err)) {
    return new StoreFullError("disk_full", "The disk holding the PostgreSQL database is full", {
      cause: err,
    });
  }
  if (err instanceof StoreUnavailableError || !isConnectionError(err)) return err;
  return new StoreUnavailableError(`PostgreSQL unavailable: ${(err as Error).message}`, { cause: err });
}

/**
 * One statement for every element of a history read (exported for `bench/pg-explain.ts`): a LATERAL range
 * read per id, each an index range scan on (element_id, ts_us) in the partitions the range overlaps, cut at
 * limit+1 to detect truncation, and aggregated into one string per element in `seriesFromText`'s form
 * (chr(1) is never raw in `json` text, which PostgreSQL checks on input). Each value is embedded as its
 * stored text. The server builds the string, and the driver decodes one string per element instead of
 * four fields per point.
 */
export const HISTORY_SERIES_SQL = `
  SELECT ids.id, s.series
    FROM unnest($1::text[]) AS ids(id)
   CROSS JOIN LATERAL (
     SELECT string_agg(h.ts_us::text || chr(1) || ${pointHeadSql({ value: "h.value::text", quality: "to_json(h.quality)::text" })},
                       chr(1) ORDER BY h.ts_us) AS series
       FROM (SELECT ts_us, value, quality FROM history
              WHERE element_id = ids.id AND ts_us >= $2::int8 AND ts_us <= $3::int8
              ORDER BY ts_us
              LIMIT $4::int8) h
   ) s`;

/**
 * The objects named in `$1` and every object below them, to any depth, through the relationship types in
 * `$2`; locked, in id order, so a concurrent import or removal of the same objects waits for this one.
 */
const OBJECTS_BELOW_SQL = `
  WITH RECURSIVE below(id) AS (
    SELECT element_id FROM objects WHERE element_id = ANY($1::text[])
    UNION
    SELECT r.target_id FROM relationships r JOIN below b ON r.source_id = b.id
     WHERE r.relationship_type = ANY($2::text[])
  )
  SELECT o.element_id AS id FROM objects o JOIN below b ON o.element_id = b.id
   ORDER BY o.element_id FOR UPDATE OF o`;

function checkTimestamps(points: readonly PointWrite[]): void {
  for (const p of points) {
    if (!Number.isSafeInteger(p.tsUs)) {
      throw new RangeError(`invalid timestamp for ${p.elementId}: ${p.tsUs} (integer microseconds expected)`);
    }
  }
}

interface WritePlan {
  /** The last point per (element, timestamp), sorted. */
  history: PointRow[];
  /** The point per element that is to become current (if at least as new, in history mode), sorted. */
  current: PointRow[];
  /** The same points as written, by element. */
  becoming: Map<string, PointWrite>;
}

/**
 * A batch with the semantics of applying its points one by one: the last point per (element, timestamp) is
 * the history record; the current value is the last point (`current`) or the newest, later ones winning
 * ties (`history`, and only when at least as new as the stored one). Rows are sorted, so concurrent writers
 * lock rows in one order and cannot deadlock each other.
 */
function planPoints(points: readonly PointWrite[], mode: WriteMode): WritePlan {
  const history = new Map<string, PointRow>();
  const current = new Map<string, PointRow>();
  const becoming = new Map<string, PointWrite>();
  for (const p of points) {
    const row: PointRow = {
      id: p.elementId,
      ts: p.tsUs,
      value: JSON.stringify(p.vqt.value ?? null),
      quality: p.vqt.quality,
    };
    history.set(`${p.elementId}\u0000${p.tsUs}`, row);
    const seen = current.get(p.elementId);
    if (mode === "current" || seen === undefined || p.tsUs >= seen.ts) {
      current.set(p.elementId, row);
      becoming.set(p.elementId, p);
    }
  }
  return {
    history: [...history.values()].sort(compareRows),
    current: [...current.values()].sort(compareRows),
    becoming,
  };
}

const PUT_HISTORY = `INSERT INTO history (element_id, ts_us, value, quality)
  SELECT * FROM unnest($1::text[], $2::int8[], $3::json[], $4::text[])
  ON CONFLICT (element_id, ts_us) DO UPDATE SET value = EXCLUDED.value, quality = EXCLUDED.quality`;

function putCurrent(first: number, mode: WriteMode): string {
  const p = (n: number) => `$${first + n}`;
  return `INSERT INTO current_values AS cv (element_id, ts_us, value, quality)
  SELECT * FROM unnest(${p(0)}::text[], ${p(1)}::int8[], ${p(2)}::json[], ${p(3)}::text[])
  ON CONFLICT (element_id) DO UPDATE SET ts_us = EXCLUDED.ts_us, value = EXCLUDED.value, quality = EXCLUDED.quality
  ${mode === "current" ? "" : "WHERE EXCLUDED.ts_us >= cv.ts_us"}
  RETURNING element_id, ts_us`;
}

/** Current mode: every point is announced, in order; the payloads are known before the statement runs. */
const WRITE_CURRENT_SQL = `WITH h AS (${PUT_HISTORY}), c AS (${putCurrent(5, "current")})
  SELECT pg_notify($9, p) FROM unnest($10::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n`;

/**
 * History mode: only what became current is announced, so the payloads are built from the upsert's
 * RETURNING, `$11` entries each (as many as surely fit below NOTIFY's limit), in the format of pg-notify.ts.
 * Each row also names its entries' elements, which is what `writePoints` returns.
 */
const WRITE_HISTORY_SQL = `WITH h AS (${PUT_HISTORY}), c AS (${putCurrent(5, "history")})
  SELECT pg_notify($9, $10 || string_agg(to_json(element_id)::text || ',' || ts_us::text, ','
                                         ORDER BY element_id, ts_us) || ']}'),
         array_agg(element_id ORDER BY element_id, ts_us) AS ids
    FROM (SELECT element_id, ts_us, (row_number() OVER (ORDER BY element_id, ts_us) - 1) / $11 AS chunk
            FROM c) x
   GROUP BY chunk ORDER BY chunk`;

/** The whole write as one statement, or undefined when it is too large for one (then: a transaction). */
function singleStatementWrite(
  plan: WritePlan,
  points: readonly PointWrite[],
  mode: WriteMode,
  origin: string,
): pg.QueryConfig | undefined {
  if (plan.history.length > WRITE_CHUNK) return undefined;
  const values = [...columns(plan.history), ...columns(plan.current), CHANGES_CHANNEL];
  if (mode === "current") {
    const payloads = encodeChanges(
      origin,
      points.map((p) => ({ elementId: p.elementId, tsUs: p.tsUs })),
    );
    return { name: "i3xd_write_current", text: WRITE_CURRENT_SQL, values: [...values, payloads] };
  }
  const head = `{"o":${JSON.stringify(origin)},"c":[`;
  let longest = 0;
  for (const r of plan.current) longest = Math.max(longest, Buffer.byteLength(JSON.stringify(r.id)));
  // An entry is the quoted id, a comma and at most 16 digits; one more comma between entries.
  const perPayload = Math.floor((PAYLOAD_MAX_BYTES - head.length - 2) / (longest + 18));
  if (perPayload < 1) return undefined;
  return { name: "i3xd_write_history", text: WRITE_HISTORY_SQL, values: [...values, head, perPayload] };
}

/** A batch as multi-row statements of up to WRITE_CHUNK rows each, in the caller's transaction. */
async function putPoints(
  client: pg.PoolClient,
  plan: WritePlan,
  points: readonly PointWrite[],
  mode: WriteMode,
): Promise<ChangeKey[]> {
  for (let i = 0; i < plan.history.length; i += WRITE_CHUNK) {
    await client.query({
      name: "i3xd_history_put",
      text: PUT_HISTORY,
      values: columns(plan.history.slice(i, i + WRITE_CHUNK)),
    });
  }
  const changed: ChangeKey[] = [];
  for (let i = 0; i < plan.current.length; i += WRITE_CHUNK) {
    const { rows } = await client.query<{ element_id: string; ts_us: number }>({
      name: mode === "current" ? "i3xd_current_put" : "i3xd_current_put_newer",
      text: putCurrent(1, mode),
      values: columns(plan.current.slice(i, i + WRITE_CHUNK)),
    });
    for (const r of rows) changed.push({ elementId: r.element_id, tsUs: r.ts_us });
  }
  // A current-mode batch changes the value once per point, as the local feed reports it.
  if (mode === "current") return points.map((p) => ({ elementId: p.elementId, tsUs: p.tsUs }));
  return changed;
}

function columns(rows: readonly PointRow[]): unknown[] {
  return [rows.map((r) => r.id), rows.map((r) => r.ts), rows.map((r) => r.value), rows.map((r) => r.quality)];
}

function compareRows(a: PointRow, b: PointRow): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : a.ts - b.ts;
}

function compareEdges(a: [string, string, string], b: [string, string, string]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** Queued by the transaction and delivered by PostgreSQL only when it commits, in order. */
async function notify(client: pg.PoolClient, payloads: readonly string[]): Promise<void> {
  if (payloads.length === 0) return;
  await client.query({
    name: "i3xd_notify",
    text: "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
    values: [CHANGES_CHANNEL, payloads],
  });
}

function partitionName(dayStartUs: number): string {
  const d = new Date(dayStartUs / 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `history_p${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
}

/**
 * Rows in one partition about to be dropped, for `store_retention_deleted_total`: counted, since the
 * planner's estimate is 0 until autovacuum has analysed the table. Once per partition, a day's rows.
 */
async function partitionRows(client: pg.PoolClient, name: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${name}`);
  return Number(rows[0].n);
}

/** Daily partitions of `history` by name, with the exclusive upper bound of each (µs). */
async function listPartitions(client: pg.PoolClient): Promise<Map<string, number>> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'history'::regclass`,
  );
  const out = new Map<string, number>();
  for (const { name } of rows) {
    const m = /^history_p(\d{4})(\d{2})(\d{2})$/.exec(name);
    if (!m) continue;
    const lo = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) * 1000;
    out.set(name, lo + DAY_US);
  }
  return out;
}

/**
 * A new daily partition. Points already written for that day wait in the default partition (PostgreSQL
 * refuses a partition whose rows sit in the default): they are moved into the new table before it is
 * attached, all in the caller's transaction.
 */
async function createPartition(client: pg.PoolClient, name: string, lo: number, hi: number): Promise<void> {
  const { rows } = await client.query<{ stray: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM history_default WHERE ts_us >= $1 AND ts_us < $2) AS stray",
    [lo, hi],
  );
  if (!rows[0].stray) {
    await client.query(`CREATE TABLE ${name} PARTITION OF history FOR VALUES FROM (${lo}) TO (${hi})`);
    return;
  }
  await client.query("LOCK TABLE history_default IN ACCESS EXCLUSIVE MODE");
  await client.query(`CREATE TABLE ${name} (LIKE history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
  await client.query(
    `WITH moved AS (
       DELETE FROM history_default WHERE ts_us >= $1 AND ts_us < $2 RETURNING element_id, ts_us, value, quality)
     INSERT INTO ${name} (element_id, ts_us, value, quality) SELECT * FROM moved`,
    [lo, hi],
  );
  await client.query(`ALTER TABLE history ATTACH PARTITION ${name} FOR VALUES FROM (${lo}) TO (${hi})`);
}

/** Items deduplicated by key: the last one's content at the first one's position, as sequential upserts. */
function lastWins<T>(items: readonly T[], key: (item: T) => string): T[] {
  const out = new Map<string, T>();
  for (const item of items) out.set(key(item), item);
  return [...out.values()];
}
