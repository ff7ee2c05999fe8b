import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, inject } from "vitest";

/** Where test databases are created and dropped (trust auth on this machine and in CI). */
export const PG_ADMIN_URL =
  process.env.I3XD_TEST_PG_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Names of this run's databases start with this, so the global teardown drops exactly those. */
export function runPrefix(): string {
  let run: string | undefined;
  try {
    run = inject("pgTestRun");
  } catch {
    // outside a vitest worker (a child process): a run of its own
  }
  return `i3xd_test_${run ?? randomBytes(4).toString("hex")}_`;
}

export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Whether the PostgreSQL tests of a file run: always under CI=true (a missing server then fails them, it
 * never skips them), otherwise only when the server answers.
 */
export async function runPostgresTests(): Promise<boolean> {
  if (process.env.CI === "true") return true;
  return postgresReachable();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Drops the database, ending whatever is still connected to it. */
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5000 });
    client.on("error", () => {});
    await client.connect();
    try {
      return await fn(client);
    } catch (err) {
      // CREATE and DROP DATABASE force a checkpoint, which fails while another test holds a tablespace
      // full (test/api/store-full.test.ts) until that test frees it: wait for it rather than fail here.
      if (!(err instanceof Error && /checkpoint request failed/.test(err.message)) || attempt >= 60)
        throw err;
    } finally {
      await client.end().catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function urlOf(name: string): string {
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A fresh, empty database named `i3xd_test_<run>_<random>`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  return openTestDatabase(`${runPrefix()}${randomBytes(6).toString("hex")}`);
}

/**
 * A fresh database for the tests of the enclosing `describe`: created before the first, dropped after the
 * last. Its `name` and `url` may be read only inside tests and hooks, once it exists.
 */
export function useTestDatabase(): TestDatabase {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  const created = () => {
    if (!db) throw new Error("the test database is read before it was created");
    return db;
  };
  return {
    get name() {
      return created().name;
    },
    get url() {
      return created().url;
    },
    drop: () => created().drop(),
  };
}

/**
 * The database that belongs to `key` (e.g. a data directory that a restart test reuses): created on first
 * use, found again on later ones within the run, dropped by the run's teardown at the latest.
 */
export async function testDatabaseFor(key: string): Promise<TestDatabase> {
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 12);
  return openTestDatabase(`${runPrefix()}k${hash}`);
}

async function openTestDatabase(name: string): Promise<TestDatabase> {
  await admin(async (c) => {
    const { rowCount } = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rowCount === 0) await c.query(`CREATE DATABASE ${name}`);
  });
  return {
    name,
    url: urlOf(name),
    drop: () => dropDatabase(name),
  };
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

/** Drops every database whose name starts with `prefix` (the run's teardown). */
export async function dropDatabases(prefix: string): Promise<string[]> {
  return admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
      [prefix],
    );
    for (const { datname } of rows) await c.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    return rows.map((r) => r.datname);
  });
}

/** Ends every session connected to the database (what a PostgreSQL restart or a network cut does). */
export async function terminateConnections(name: string): Promise<number> {
  return admin(async (c) => {
    const { rowCount } = await c.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
      [name],
    );
    return rowCount ?? 0;
  });
}

declare module "vitest" {
  export interface ProvidedContext {
    pgTestRun: string;
  }
}

/**
 * A session of its own on the database at `url` that holds i3xd's write path up: while `hold()` is in
 * force, no current value can be stored, which lets a test fill the queues in front of the store.
 */
export async function writePathLock(
  url: string,
): Promise<{ hold(): Promise<void>; release(): Promise<void>; end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    async hold() {
      await client.query("BEGIN");
      await client.query("LOCK TABLE current_values IN EXCLUSIVE MODE");
    },
    async release() {
      await client.query("COMMIT");
    },
    end: () => client.end().catch(() => {}),
  };
}
