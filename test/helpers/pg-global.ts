import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";

/**
 * Vitest global setup: one id per test run, which every test database's name carries
 * (`i3xd_test_<run>_…`), and a teardown that drops whatever of this run is left (databases of servers a
 * test reused across restarts, or of a worker that died). Other runs on the same server are untouched.
 */
export default function setup(project: TestProject) {
  const run = randomBytes(4).toString("hex");
  project.provide("pgTestRun", run);
  return async () => {
    const { dropDatabases, postgresReachable } = await import("./pg.js");
    if (!(await postgresReachable())) return;
    await dropDatabases(`i3xd_test_${run}_`);
  };
}
