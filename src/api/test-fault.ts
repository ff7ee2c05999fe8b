import type { FastifyPluginAsync } from "fastify";
import type { AppDeps } from "./deps.js";

/**
 * `POST /v1/_test/fault`: fails with a plain Error so tests of alerting, tracing and error reporting can
 * force a 500 through the normal error path. Registered only with I3XD_TEST_FAULTS=1, which start-up
 * refuses in production.
 */
export const testFaultRoutes: FastifyPluginAsync<AppDeps> = async (app) => {
  app.post("/_test/fault", { config: { scope: "read" }, schema: { hide: true } }, async () => {
    throw new Error("Fault injected by POST /v1/_test/fault");
  });
};
