import type { Migration } from "../../sqlite/migrations/sqlite.js";

/**
 * PostgreSQL schema migrations, applied in order, each in its own transaction, while the migrating process
 * holds an advisory lock (several replicas may start at once); `schema_migrations` records what ran.
 * Never edit a released migration: add the next one.
 *
 * Ids are `COLLATE "C"`: byte order, as SQLite's BINARY collation, so listings and relationship reads come
 * back in the same order on both stores, and B-tree comparisons skip the locale machinery. Values, schemas
 * and vendor data are `json` (not `jsonb`): it keeps the text as written, key order included, so a value
 * reads back exactly as it was stored. `seq` keeps insertion order for listings, as SQLite's rowid does.
 * Design: docs/adr/008-postgres-store.md.
 */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "address space, current values and time-partitioned history",
    sql: `
      CREATE TABLE namespaces (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        uri text COLLATE "C" PRIMARY KEY,
        display_name text NOT NULL
      );
      CREATE TABLE object_types (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        element_id text COLLATE "C" PRIMARY KEY,
        display_name text NOT NULL,
        namespace_uri text COLLATE "C" NOT NULL,
        source_type_id text NOT NULL,
        version text,
        schema json NOT NULL,
        related json
      );
      CREATE INDEX object_types_namespace ON object_types (namespace_uri, seq);
      CREATE TABLE relationship_types (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        element_id text COLLATE "C" PRIMARY KEY,
        display_name text NOT NULL,
        namespace_uri text COLLATE "C" NOT NULL,
        relationship_id text NOT NULL,
        reverse_of text COLLATE "C" NOT NULL
      );
      CREATE INDEX relationship_types_namespace ON relationship_types (namespace_uri, seq);
      CREATE TABLE objects (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        element_id text COLLATE "C" PRIMARY KEY,
        display_name text NOT NULL,
        type_element_id text COLLATE "C" NOT NULL,
        parent_id text COLLATE "C",
        is_composition boolean NOT NULL DEFAULT false,
        is_extended boolean NOT NULL DEFAULT false,
        description text,
        system json,
        schema_extensions json
      );
      CREATE INDEX objects_seq ON objects (seq);
      CREATE INDEX objects_type ON objects (type_element_id);
      CREATE INDEX objects_parent ON objects (parent_id);
      -- Every relationship is stored in both directions, so one index serves "all neighbours of X".
      CREATE TABLE relationships (
        source_id text COLLATE "C" NOT NULL,
        relationship_type text COLLATE "C" NOT NULL,
        target_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (source_id, relationship_type, target_id)
      );
      CREATE INDEX relationships_target ON relationships (target_id, relationship_type);
      CREATE TABLE current_values (
        element_id text COLLATE "C" PRIMARY KEY,
        ts_us bigint NOT NULL,
        value json NOT NULL,
        quality text NOT NULL
      );
      -- Range-partitioned by time: daily partitions (history_pYYYYMMDD) are created ahead by the server and
      -- dropped whole by the retention setting. The primary key includes the partition key, as PostgreSQL
      -- requires, and is also the read path: a range read for one element is one index range per partition.
      CREATE TABLE history (
        element_id text COLLATE "C" NOT NULL,
        ts_us bigint NOT NULL,
        value json NOT NULL,
        quality text NOT NULL,
        PRIMARY KEY (element_id, ts_us)
      ) PARTITION BY RANGE (ts_us);
      -- Catches every point no daily partition covers (far past, far future), so no write ever fails for
      -- lack of a partition. Its own time index serves retention deletes and moving rows into a partition.
      CREATE TABLE history_default PARTITION OF history DEFAULT;
      CREATE INDEX history_default_ts ON history_default (ts_us);
    `,
  },
];
