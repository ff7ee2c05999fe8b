/**
 * SQLite schema migrations, applied in order inside one transaction each; the database's `user_version`
 * records the last one applied. Never edit a released migration: add the next one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** SQLite: statements that cannot run in a transaction (VACUUM); the version is recorded after them. */
  outsideTransaction?: boolean;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "address space, current values and history",
    sql: `
      CREATE TABLE namespaces (
        uri TEXT PRIMARY KEY,
        display_name TEXT NOT NULL
      );
      CREATE TABLE object_types (
        element_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        namespace_uri TEXT NOT NULL,
        source_type_id TEXT NOT NULL,
        version TEXT,
        schema TEXT NOT NULL,
        related TEXT
      );
      CREATE INDEX object_types_namespace ON object_types (namespace_uri);
      CREATE TABLE relationship_types (
        element_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        namespace_uri TEXT NOT NULL,
        relationship_id TEXT NOT NULL,
        reverse_of TEXT NOT NULL
      );
      CREATE INDEX relationship_types_namespace ON relationship_types (namespace_uri);
      CREATE TABLE objects (
        element_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        type_element_id TEXT NOT NULL,
        parent_id TEXT,
        is_composition INTEGER NOT NULL DEFAULT 0,
        is_extended INTEGER NOT NULL DEFAULT 0,
        description TEXT,
        system TEXT,
        schema_extensions TEXT
      );
      CREATE INDEX objects_type ON objects (type_element_id);
      CREATE INDEX objects_parent ON objects (parent_id);
      -- Every relationship is stored in both directions, so one index serves "all neighbours of X".
      CREATE TABLE relationships (
        source_id TEXT NOT NULL,
        relationship_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        PRIMARY KEY (source_id, relationship_type, target_id)
      ) WITHOUT ROWID;
      CREATE INDEX relationships_target ON relationships (target_id, relationship_type);
      CREATE TABLE current_values (
        element_id TEXT PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        value TEXT NOT NULL,
        quality TEXT NOT NULL
      ) WITHOUT ROWID;
      -- Clustered on (element, time): a range read for one element is one contiguous index range.
      CREATE TABLE history (
        element_id TEXT NOT NULL,
        ts_us INTEGER NOT NULL,
        value TEXT NOT NULL,
        quality TEXT NOT NULL,
        PRIMARY KEY (element_id, ts_us)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: "incremental auto-vacuum",
    // Retention and the size bound free pages; with INCREMENTAL the store's upkeep hands them back to the
    // file system (\`PRAGMA incremental_vacuum\`), so the file shrinks instead of only ceasing to grow. An
    // existing file changes mode only by a VACUUM, which rewrites it once (about a second per 100 MB).
    sql: "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;",
    outsideTransaction: true,
  },
];
