import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { loadConfig } from "../../src/config.js";
import { type RunningServer, startServer } from "../../src/runtime.js";
import { createTestDatabase, type TestDatabase, testDatabaseFor } from "./pg.js";

export type TestServer = RunningServer & { dataDir: string };

/**
 * Starts the real server on 127.0.0.1, port 0, for one test file. Defaults: a fresh temporary data
 * directory (removed again by `close()`), the demo plant loaded, logging silenced, and a simulator tick of
 * an hour so values only change when a test writes them. `env` overrides any of these; a data directory
 * given as `I3XD_DATA_DIR` belongs to the caller and is left in place (restart tests reuse it).
 *
 * `I3XD_STORE_URL` in `env` runs the server on that PostgreSQL database. With `I3XD_TEST_STORE=postgres`
 * (in `env` or the environment; `npm run test:api:postgres`) every server gets a fresh PostgreSQL database
 * instead of SQLite, dropped by `close()`; a caller's data directory maps to one database for the run, so
 * restarts find their data again.
 */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const ownDir = env.I3XD_DATA_DIR === undefined;
  const dataDir = env.I3XD_DATA_DIR ?? mkdtempSync(path.join(tmpdir(), "i3xd-test-"));
  let db: TestDatabase | undefined;
  if (
    env.I3XD_STORE_URL === undefined &&
    (env.I3XD_TEST_STORE ?? process.env.I3XD_TEST_STORE) === "postgres"
  ) {
    db = ownDir ? await createTestDatabase() : await testDatabaseFor(dataDir);
  }
  const ownDb = ownDir ? db : undefined;
  const config = loadConfig({
    ...process.env,
    I3XD_HOST: "127.0.0.1",
    I3XD_PORT: "0",
    I3XD_DEMO: "true",
    I3XD_SIMULATOR_INTERVAL_MS: "3600000",
    LOG_LEVEL: "silent",
    ...env,
    ...(db ? { I3XD_STORE_URL: db.url } : {}),
    I3XD_DATA_DIR: dataDir,
  });
  let server: RunningServer;
  try {
    server = await startServer(config);
  } catch (err) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    await ownDb?.drop();
    throw err;
  }
  const close = server.close.bind(server);
  return Object.assign(server, {
    dataDir,
    async close(reason?: string) {
      await close(reason);
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      await ownDb?.drop();
    },
  });
}

/** A temporary directory for tests that manage the data directory themselves (e.g. restarts). */
export function makeTempDir(prefix = "i3xd-test-"): {
  dir: string;
  /** Writes `text` to the file `name` in the directory; returns its path. */
  write(name: string, text: string): string;
  remove(): void;
} {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      return file;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * One test server shared by the tests of a file: started before the first test and closed after the last.
 * `server` and `url` may be read only inside tests and hooks, once it has started.
 */
export function useTestServer(env: Record<string, string> = {}): {
  readonly server: TestServer;
  readonly url: string;
} {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer(env);
  });
  afterAll(async () => {
    await server?.close();
  });
  const started = (): TestServer => {
    if (server === undefined) throw new Error("the test server has not started yet");
    return server;
  };
  return {
    get server() {
      return started();
    },
    get url() {
      return started().url;
    },
  };
}
