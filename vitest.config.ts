import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A run id for PostgreSQL test databases, and dropping whatever of this run is left at the end.
    globalSetup: ["test/helpers/pg-global.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more parallel files only thrash; servers in tests bind port 0.
    maxWorkers: 2,
  },
});
