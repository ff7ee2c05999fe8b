import fs from "node:fs";
import path from "node:path";
import type Database from "better-sqlite3";
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
import { KEEP_FOREVER, type RetentionPolicy } from "../retention.js";
import {
  byId,
  modelRowMappers,
  type Row,
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
  type WriteMode,
} from "../store.js";
import { SQLITE_MIGRATIONS } from "./migrations/sqlite.js";
import { type HistoryStatements, prepareHistoryStatements, readSeries } from "./sqlite-history.js";
import { HistoryReaders } from "./sqlite-readers.js";
import { SqliteUpkeep, type UpkeepResult } from "./sqlite-upkeep.js";
import {
  openWritable,
  prepareWriteStatements,
  putPoints,
  toBatch,
  type WriteStatements,
} from "./sqlite-writes.js";

const log = getLogger("i3xd.store");

const { toObject, toObjectType } = modelRowMappers((column) => JSON.parse(column as string));

type Statement = Database.Statement<unknown[], Row>;

export interface SqliteOptions {
  /**
   * Worker threads that read history ranges, each with a read-only connection (`sqlite-readers.ts`);
   * 0 reads them on the event loop. An in-memory database is always read on the event loop.
   */
  historyReadThreads?: number;
  /** What history retention removes (`I3XD_HISTORY_RETENTION`, `…_BY_TYPE`); default: nothing. */
  retention?: RetentionPolicy;
  /** `I3XD_STORE_MAX_BYTES`: the database file stays within it (`sqlite-upkeep.ts`). */
  maxBytes?: number;
  /** How often retention, the size bound and the store metrics run (default one minute). */
  upkeepIntervalMs?: number;
}

/** `isComposition` follows from `HasComponent` edges; the statement refreshes it, for all or some objects. */
const REFRESH_COMPOSITION = `UPDATE objects SET is_composition = EXISTS (
    SELECT 1 FROM relationships r WHERE r.source_id = objects.element_id AND r.relationship_type = '${HAS_COMPONENT}')`;

/**
 * The embedded default store. better-sqlite3 is synchronous, which on one connection is the fastest way
 * to reach SQLite for small work: no thread hop, statements prepared once. History ranges, the large
 * reads, can go to worker threads with read-only connections of their own (`SqliteOptions`), which WAL
 * allows beside this one; every write is made on this connection, with `openWritable`'s durability.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  private db: Database.Database;
  private inode: number | undefined;
  private stmts!: ReturnType<SqliteStore["prepare"]>;
  private history!: HistoryStatements;
  private writes!: WriteStatements;
  private readonly readers: HistoryReaders | undefined;
  private readonly maxBytes: number | undefined;
  private readonly upkeep: SqliteUpkeep;

  constructor(
    private readonly file: string,
    options: SqliteOptions = {},
  ) {
    this.maxBytes = options.maxBytes;
    this.db = this.open();
    this.upkeep = new SqliteUpkeep(() => this.db, {
      file,
      retention: options.retention ?? KEEP_FOREVER,
      maxBytes: options.maxBytes,
      intervalMs: options.upkeepIntervalMs ?? 60_000,
    });
    const threads = options.historyReadThreads ?? 0;
    this.readers =
      threads > 0 && file !== ":memory:"
        ? new HistoryReaders(file, threads, ({ ids, range }) =>
            ids.map((id) => readSeries(this.history, id, range)),
          )
        : undefined;
  }

  private open(): Database.Database {
    if (this.file !== ":memory:") fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const db = openWritable(this.file, {}, this.maxBytes);
    this.inode = this.file === ":memory:" ? undefined : fs.statSync(this.file).ino;
    return db;
  }

  async init(): Promise<void> {
    this.migrate();
    this.prepareAll();
    this.upkeep.start();
  }

  /**
   * One upkeep cycle now: retention, the size bound, incremental vacuum, metrics. The store runs it on its
   * own every `upkeepIntervalMs`; `nowMs` lets a test move the clock.
   */
  runUpkeep(nowMs?: number): Promise<UpkeepResult> {
    return this.upkeep.run(nowMs);
  }

  private prepareAll(): void {
    this.stmts = this.prepare();
    this.history = prepareHistoryStatements(this.db);
    this.writes = prepareWriteStatements(this.db);
  }

  private migrate(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    for (const migration of SQLITE_MIGRATIONS) {
      if (migration.version <= current) continue;
      if (migration.outsideTransaction) {
        const started = Date.now();
        try {
          this.db.exec(migration.sql);
        } catch (err) {
          // VACUUM needs room for a copy of the file: without it the store still works as it was, and the
          // next start tries again.
          log.warn({ exception: err, version: migration.version }, "Store migration postponed");
          return;
        }
        this.db.pragma(`user_version = ${migration.version}`);
        log.info(
          { version: migration.version, name: migration.name, durationMs: Date.now() - started },
          "Applied store migration",
        );
        continue;
      }
      this.db.transaction(() => {
        this.db.exec(migration.sql);
        this.db.pragma(`user_version = ${migration.version}`);
      })();
      log.info({ version: migration.version, name: migration.name }, "Applied store migration");
    }
  }

  private prepare() {
    const db = this.db;
    return {
      isEmpty: db.prepare(
        "SELECT (SELECT count(*) FROM object_types) + (SELECT count(*) FROM objects) AS n",
      ) as Statement,
      namespaces: db.prepare("SELECT uri, display_name FROM namespaces ORDER BY rowid") as Statement,
      objectTypesAll: db.prepare("SELECT * FROM object_types ORDER BY rowid") as Statement,
      objectTypesByNs: db.prepare(
        "SELECT * FROM object_types WHERE namespace_uri = ? ORDER BY rowid",
      ) as Statement,
      objectTypesByIds: db.prepare(
        "SELECT * FROM object_types WHERE element_id IN (SELECT value FROM json_each(?))",
      ) as Statement,
      relTypesAll: db.prepare("SELECT * FROM relationship_types ORDER BY rowid") as Statement,
      relTypesByNs: db.prepare(
        "SELECT * FROM relationship_types WHERE namespace_uri = ? ORDER BY rowid",
      ) as Statement,
      relTypesByIds: db.prepare(
        "SELECT * FROM relationship_types WHERE element_id IN (SELECT value FROM json_each(?))",
      ) as Statement,
      objectsFiltered: db.prepare(
        `SELECT * FROM objects
          WHERE (@type IS NULL OR type_element_id = @type)
            AND (@root IS NULL OR (@root = 1 AND parent_id IS NULL) OR (@root = 0 AND parent_id IS NOT NULL))
          ORDER BY rowid`,
      ) as Statement,
      objectsByIds: db.prepare(
        "SELECT * FROM objects WHERE element_id IN (SELECT value FROM json_each(?))",
      ) as Statement,
      relsBySources: db.prepare(
        `SELECT source_id, relationship_type, target_id FROM relationships
          WHERE source_id IN (SELECT value FROM json_each(?)) ORDER BY source_id, relationship_type, target_id`,
      ) as Statement,
      relsBySourcesAndType: db.prepare(
        `SELECT source_id, relationship_type, target_id FROM relationships
          WHERE source_id IN (SELECT value FROM json_each(?)) AND relationship_type = ?
          ORDER BY source_id, target_id`,
      ) as Statement,
      currentByIds: db.prepare(
        "SELECT element_id, ts_us, value, quality FROM current_values WHERE element_id IN (SELECT value FROM json_each(?))",
      ) as Statement,
      upsertNamespace: db.prepare(
        `INSERT INTO namespaces (uri, display_name) VALUES (?, ?)
          ON CONFLICT(uri) DO UPDATE SET display_name = excluded.display_name`,
      ),
      upsertObjectType: db.prepare(
        `INSERT INTO object_types (element_id, display_name, namespace_uri, source_type_id, version, schema, related)
          VALUES (@elementId, @displayName, @namespaceUri, @sourceTypeId, @version, @schema, @related)
          ON CONFLICT(element_id) DO UPDATE SET display_name = excluded.display_name,
            namespace_uri = excluded.namespace_uri, source_type_id = excluded.source_type_id,
            version = excluded.version, schema = excluded.schema, related = excluded.related`,
      ),
      upsertRelType: db.prepare(
        `INSERT INTO relationship_types (element_id, display_name, namespace_uri, relationship_id, reverse_of)
          VALUES (@elementId, @displayName, @namespaceUri, @relationshipId, @reverseOf)
          ON CONFLICT(element_id) DO UPDATE SET display_name = excluded.display_name,
            namespace_uri = excluded.namespace_uri, relationship_id = excluded.relationship_id,
            reverse_of = excluded.reverse_of`,
      ),
      upsertObject: db.prepare(
        `INSERT INTO objects (element_id, display_name, type_element_id, parent_id, is_extended, description,
            system, schema_extensions)
          VALUES (@elementId, @displayName, @typeElementId, @parentId, @isExtended, @description, @system,
            @schemaExtensions)
          ON CONFLICT(element_id) DO UPDATE SET display_name = excluded.display_name,
            type_element_id = excluded.type_element_id, parent_id = excluded.parent_id,
            is_extended = excluded.is_extended, description = excluded.description, system = excluded.system,
            schema_extensions = excluded.schema_extensions`,
      ),
      deleteHierarchyEdges: db.prepare(
        `DELETE FROM relationships
          WHERE (source_id = ? AND relationship_type = '${HAS_PARENT}')
             OR (target_id = ? AND relationship_type = '${HAS_CHILDREN}')`,
      ),
      insertEdge: db.prepare(
        "INSERT OR IGNORE INTO relationships (source_id, relationship_type, target_id) VALUES (?, ?, ?)",
      ),
      // Every id given in the JSON array, and every object below one of them, to any depth.
      objectsBelow: db.prepare(
        `WITH RECURSIVE below(id) AS (
           SELECT element_id FROM objects WHERE element_id IN (SELECT value FROM json_each(?))
           UNION
           SELECT r.target_id FROM relationships r JOIN below b ON r.source_id = b.id
            WHERE r.relationship_type IN ('${HAS_COMPONENT}', '${HAS_CHILDREN}')
         )
         SELECT id FROM below`,
      ) as Statement,
      compositionsAbove: db.prepare(
        `SELECT DISTINCT source_id FROM relationships
          WHERE relationship_type = '${HAS_COMPONENT}' AND target_id IN (SELECT value FROM json_each(@ids))
            AND source_id NOT IN (SELECT value FROM json_each(@ids))`,
      ) as Statement,
      deleteEdgesOf: db.prepare(
        `DELETE FROM relationships WHERE source_id IN (SELECT value FROM json_each(@ids))
            OR target_id IN (SELECT value FROM json_each(@ids))`,
      ),
      deleteCurrentOf: db.prepare(
        "DELETE FROM current_values WHERE element_id IN (SELECT value FROM json_each(?))",
      ),
      deleteHistoryOf: db.prepare("DELETE FROM history WHERE element_id IN (SELECT value FROM json_each(?))"),
      deleteObjects: db.prepare("DELETE FROM objects WHERE element_id IN (SELECT value FROM json_each(?))"),
      refreshCompositionOf: db.prepare(
        `${REFRESH_COMPOSITION} WHERE element_id IN (SELECT value FROM json_each(?))`,
      ),
      refreshComposition: db.prepare(REFRESH_COMPOSITION),
    };
  }

  async close(): Promise<void> {
    await this.upkeep.stop();
    await this.readers?.close();
    if (this.db.open) this.db.close();
  }

  async ping(): Promise<void> {
    if (this.file !== ":memory:") {
      let ino: number;
      try {
        ino = fs.statSync(this.file).ino;
      } catch {
        throw new Error(`SQLite database file ${this.file} is missing`);
      }
      // An open handle keeps working on an unlinked file: reopen when the path now names another file.
      if (!this.db.open || ino !== this.inode) this.reopen();
    } else if (!this.db.open) {
      throw new Error("SQLite database is closed");
    }
    this.db.prepare("SELECT 1").get();
  }

  private reopen(): void {
    if (this.db.open) this.db.close();
    this.db = this.open();
    this.migrate();
    this.prepareAll();
    // Their connections still use the file that was replaced; the next request starts them on this one.
    void this.readers?.close();
    log.warn({ file: this.file }, "Reopened the SQLite database");
  }

  connectionCount(): number {
    return this.db.open ? 1 : 0;
  }

  async isEmpty(): Promise<boolean> {
    return (this.stmts.isEmpty.get() as { n: number }).n === 0;
  }

  async listNamespaces(): Promise<Namespace[]> {
    return this.stmts.namespaces
      .all()
      .map((r) => ({ uri: r.uri as string, displayName: r.display_name as string }));
  }

  async listObjectTypes(namespaceUri?: string): Promise<ObjectType[]> {
    const rows =
      namespaceUri === undefined
        ? this.stmts.objectTypesAll.all()
        : this.stmts.objectTypesByNs.all(namespaceUri);
    return rows.map(toObjectType);
  }

  async getObjectTypes(ids: readonly string[]): Promise<Map<string, ObjectType>> {
    return byId(this.stmts.objectTypesByIds.all(JSON.stringify(ids)), toObjectType);
  }

  async listRelationshipTypes(namespaceUri?: string): Promise<RelationshipType[]> {
    const rows =
      namespaceUri === undefined ? this.stmts.relTypesAll.all() : this.stmts.relTypesByNs.all(namespaceUri);
    return rows.map(toRelationshipType);
  }

  async getRelationshipTypes(ids: readonly string[]): Promise<Map<string, RelationshipType>> {
    return byId(this.stmts.relTypesByIds.all(JSON.stringify(ids)), toRelationshipType);
  }

  async listObjects(filter: { typeElementId?: string; root?: boolean } = {}): Promise<ObjectRecord[]> {
    const root = filter.root === undefined ? null : filter.root ? 1 : 0;
    return this.stmts.objectsFiltered.all({ type: filter.typeElementId ?? null, root }).map(toObject);
  }

  async getObjects(ids: readonly string[]): Promise<Map<string, ObjectRecord>> {
    return byId(this.stmts.objectsByIds.all(JSON.stringify(ids)), toObject);
  }

  async getRelationships(sourceIds: readonly string[], relationshipType?: string): Promise<Relationship[]> {
    const rows =
      relationshipType === undefined
        ? this.stmts.relsBySources.all(JSON.stringify(sourceIds))
        : this.stmts.relsBySourcesAndType.all(JSON.stringify(sourceIds), relationshipType);
    return rows.map(toRelationship);
  }

  async getCurrentValues(ids: readonly string[]): Promise<Map<string, Vqt>> {
    const out = new Map<string, Vqt>();
    for (const r of this.stmts.currentByIds.all(JSON.stringify(ids))) {
      out.set(r.element_id as string, {
        value: JSON.parse(r.value as string),
        quality: r.quality as Quality,
        timestamp: formatTimestampUs(r.ts_us as number),
      });
    }
    return out;
  }

  async getHistoryJson(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    if (this.readers !== undefined) return this.readers.read(ids, range);
    const out = new Map<string, HistoryJson>();
    for (const id of new Set(ids)) out.set(id, readSeries(this.history, id, range));
    return out;
  }

  async writePoints(points: readonly PointWrite[], mode: WriteMode): Promise<PointWrite[]> {
    if (points.length === 0) return [];
    const batch = toBatch(points, mode);
    const became = this.spaceChecked(() => this.db.transaction(() => putPoints(this.writes, batch))());
    return became.map((i) => points[i]);
  }

  /**
   * Runs a write transaction; one that failed for lack of space (rolled back whole) becomes a
   * `StoreFullError` (507), and upkeep runs at once to make room so that writes resume by themselves.
   */
  private spaceChecked<T>(write: () => T): T {
    try {
      return write();
    } catch (err) {
      if (!isOutOfSpace(err)) throw err;
      this.upkeep.soon();
      const reason = this.upkeep.fullReason();
      throw new StoreFullError(
        reason,
        reason === "size_bound"
          ? "The store has reached its size bound (I3XD_STORE_MAX_BYTES)"
          : "The disk holding the store is full",
        { cause: err },
      );
    }
  }

  async importModel(model: ModelDocument): Promise<void> {
    const s = this.stmts;
    this.spaceChecked(() => this.importTransaction(model, s));
  }

  async removeObjects(elementIds: readonly string[]): Promise<string[]> {
    if (elementIds.length === 0) return [];
    const s = this.stmts;
    return this.spaceChecked(() =>
      this.db.transaction(() => {
        const removed = s.objectsBelow.all(JSON.stringify(elementIds)).map((r) => r.id as string);
        if (removed.length === 0) return removed;
        const ids = JSON.stringify(removed);
        const above = s.compositionsAbove.all({ ids }).map((r) => r.source_id as string);
        s.deleteEdgesOf.run({ ids });
        s.deleteCurrentOf.run(ids);
        s.deleteHistoryOf.run(ids);
        s.deleteObjects.run(ids);
        if (above.length > 0) s.refreshCompositionOf.run(JSON.stringify(above));
        return removed;
      })(),
    );
  }

  private importTransaction(model: ModelDocument, s: SqliteStore["stmts"]): void {
    this.db.transaction(() => {
      for (const ns of model.namespaces) s.upsertNamespace.run(ns.uri, ns.displayName);
      for (const t of model.objectTypes) {
        s.upsertObjectType.run({
          elementId: t.elementId,
          displayName: t.displayName,
          namespaceUri: t.namespaceUri,
          sourceTypeId: t.sourceTypeId ?? t.elementId,
          version: t.version ?? null,
          schema: JSON.stringify(t.schema),
          related: t.related ? JSON.stringify(t.related) : null,
        });
      }
      for (const t of model.relationshipTypes) s.upsertRelType.run(t);
      for (const o of model.objects) {
        s.upsertObject.run({
          elementId: o.elementId,
          displayName: o.displayName,
          typeElementId: o.typeElementId,
          parentId: o.parentId ?? null,
          isExtended: o.isExtended ? 1 : 0,
          description: o.description ?? null,
          system: o.system ? JSON.stringify(o.system) : null,
          schemaExtensions: o.schemaExtensions ? JSON.stringify(o.schemaExtensions) : null,
        });
        // The hierarchy follows parentId: replace whatever an earlier import said about this object.
        s.deleteHierarchyEdges.run(o.elementId, o.elementId);
        if (o.parentId) {
          s.insertEdge.run(o.elementId, HAS_PARENT, o.parentId);
          s.insertEdge.run(o.parentId, HAS_CHILDREN, o.elementId);
        }
      }
      if (model.relationships?.length) {
        const reverse = new Map<string, string>();
        for (const t of this.stmts.relTypesAll.all().map(toRelationshipType))
          reverse.set(t.elementId, t.reverseOf);
        for (const r of model.relationships) {
          s.insertEdge.run(r.sourceId, r.relationshipType, r.targetId);
          const back = reverse.get(r.relationshipType);
          if (back) s.insertEdge.run(r.targetId, back, r.sourceId);
        }
      }
      s.refreshComposition.run();
      if (model.history?.length) putPoints(this.writes, toBatch(model.history.map(toPointWrite), "history"));
      // Initial values never override newer live values, so re-importing a model after the plant has been
      // running keeps what it wrote since.
      if (model.values?.length) putPoints(this.writes, toBatch(model.values.map(toPointWrite), "history"));
    })();
  }
}
