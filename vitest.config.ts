import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A run id for PostgreSQL test databases, and dropping whatever of this run is left at the end.
    globalSetup: ["test/helpers/pg-global.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Polls wait for a page or a server to reach a state, whose time a loaded machine stretches; a poll
    // that checks a promised latency sets its own timeout (e.g. the console's 2 s for a written value).
    expect: { poll: { timeout: 10_000 } },
    pool: "forks",
    // Two cores: more parallel files only thrash; servers in tests bind port 0.
    maxWorkers: 2,
  },
});
