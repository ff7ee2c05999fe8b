import type { FastifyPluginAsync } from "fastify";
import { failureBody, successBody } from "../domain/errors.js";
import { getLogger } from "../observability/logger.js";
import { redactText } from "../observability/redact.js";
import type { AppDeps } from "./deps.js";
import { failure, success } from "./schemas.js";

const log = getLogger("i3xd.health");

/** A readiness probe that hangs is as bad as a failing one: give the store this long to answer. */
const PING_TIMEOUT_MS = 2000;

const status = {
  type: "object",
  properties: {
    status: { type: "string" },
    store: { type: "string" },
    storage: { type: "string", description: "ok, or full: writes are rejected with 507 (reads work)" },
    storageDetail: { type: "string" },
    storageFullSince: { type: "string" },
    connectors: {
      type: "array",
      description: "Each configured connector on this replica; standby: another replica runs it",
      items: {
        type: "object",
        properties: {
          name: { type: "string" },
          kind: { type: "string" },
          state: { type: "string" },
          required: { type: "boolean" },
          detail: { type: "string" },
          extra: { type: "object", additionalProperties: true },
        },
        required: ["name", "kind", "state", "required"],
      },
    },
  },
  required: ["status"],
} as const;

/**
 * `GET /health/live` (the process serves requests) and `GET /health/ready` (the store answers, and the
 * server is not shutting down). Outside `/v1` and without authentication, for orchestrators and load
 * balancers; both answer with the usual envelopes.
 */
export const healthRoutes: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { store, services } = deps;
  let closing = false;
  let lastFailure: string | undefined;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });

  app.get(
    "/health/live",
    { config: { scope: "open" }, schema: { hide: true, response: { 200: success(status) } } },
    async () => successBody({ status: "live" }),
  );

  app.get(
    "/health/ready",
    { config: { scope: "open" }, schema: { hide: true, response: { 200: success(status), 503: failure } } },
    async (_request, reply) => {
      if (closing) return reply.code(503).send(failureBody(503, "Shutting down"));
      try {
        await withTimeout(store.ping(), PING_TIMEOUT_MS);
      } catch (err) {
        const reason = redactText(err instanceof Error ? err.message : String(err));
        // Once per outage, not once per probe.
        if (lastFailure === undefined)
          log.warn({ store: store.kind, reason }, "Store unreachable, not ready");
        lastFailure = reason;
        return reply.code(503).send(failureBody(503, `Store unreachable: ${reason}`));
      }
      if (lastFailure !== undefined) {
        log.info({ store: store.kind }, "Store reachable again, ready");
        lastFailure = undefined;
      }
      // Only a connector marked required keeps the process out of the balancer while its source is lost;
      // the others are reported.
      const connectors = services.connectors.statuses();
      const missing = connectors.filter((c) => c.required && c.state === "down");
      if (missing.length > 0) {
        const detail = missing.map((c) => `${c.name}${c.detail ? ` (${c.detail})` : ""}`).join("; ");
        return reply.code(503).send(failureBody(503, `Required connector down: ${redactText(detail)}`));
      }
      const reported = connectors.length > 0 ? { connectors } : {};
      // A full store still answers every read, so it stays in the balancer: the condition is reported.
      const full = services.writes.storeFull;
      if (full !== undefined) {
        return successBody({
          status: "ready",
          store: store.kind,
          storage: "full",
          storageDetail: full.detail,
          storageFullSince: full.since,
          ...reported,
        });
      }
      return successBody({ status: "ready", store: store.kind, storage: "ok", ...reported });
    },
  );
};

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
