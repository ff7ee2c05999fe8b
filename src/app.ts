import compress from "@fastify/compress";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import Fastify, { type FastifyError, type FastifyInstance, LogController } from "fastify";
import { consoleRoutes } from "./api/console.js";
import type { AppDeps } from "./api/deps.js";
import { healthRoutes } from "./api/health.js";
import { historyRoutes } from "./api/history.js";
import { infoRoutes } from "./api/info.js";
import { metricsRoutes } from "./api/metrics.js";
import { namespaceRoutes } from "./api/namespaces.js";
import { objectRoutes } from "./api/objects.js";
import { objectTypeRoutes } from "./api/objecttypes.js";
import { relationshipTypeRoutes } from "./api/relationshiptypes.js";
import { subscriptionRoutes } from "./api/subscriptions.js";
import { testFaultRoutes } from "./api/test-fault.js";
import { valueRoutes } from "./api/values.js";
import { writeRoutes } from "./api/writes.js";
import { failureBody, I3xError } from "./domain/errors.js";
import { registerObservability } from "./observability/http.js";
import { LogBursts } from "./observability/log-bursts.js";
import { getLogger } from "./observability/logger.js";
import { redactText } from "./observability/redact.js";
import { registerTelemetry } from "./observability/telemetry.js";
import { createSecurity } from "./security/authentication.js";
import { drainUnreadBodies, guardConnections } from "./security/connections.js";
import { registerCors } from "./security/cors.js";
import { docsCsp, serverOptions } from "./security/transport.js";
import { SERVER_NAME, SERVER_VERSION } from "./version.js";

const log = getLogger("i3xd.http");

/**
 * Builds the Fastify instance. Plugins are registered in a visible order: observability first (so every
 * later hook and handler runs inside the request context), then transport, then the routes.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: config.bodyLimit,
    // Request ids are assigned by our own hook (validated X-Request-ID or a fresh UUID).
    genReqId: () => "",
    // Request logging is ours (src/observability/http.ts); Fastify's own lines stay off.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: "idle",
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // HTTPS (I3XD_TLS_CERT/KEY), header size and request receipt limits, envelopes for malformed HTTP.
    ...serverOptions(config),
  });

  const failureBursts = new LogBursts(log, 10_000);
  guardConnections(app.server, config.limits);
  drainUnreadBodies(app, config.bodyLimit);

  app.setErrorHandler((err: FastifyError | I3xError, request, reply) => {
    if (err instanceof I3xError) {
      return reply.code(err.status).send(failureBody(err.status, err.message, err.title));
    }
    const status = typeof err.statusCode === "number" && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) {
      // During an outage every request fails the same way: the first of a burst carries the stack, then
      // one summary per window.
      failureBursts.write(
        `${err.name} ${err.code ?? ""}`,
        "error",
        { exception: err, method: request.method, path: request.url },
        "Request failed",
        { error_type: err.name, error_code: err.code, detail: redactText(err.message) },
      );
      return reply.code(status).send(failureBody(status, "The server could not complete the request"));
    }
    return reply.code(status).send(failureBody(status, describeClientError(err)));
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(failureBody(404, `No such endpoint: ${request.method} ${request.url.split("?")[0]}`));
  });

  // JSON only: without the built-in text/plain parser other bodies get 415 through the error handler.
  app.removeContentTypeParser("text/plain");

  // 1. Observability (request context, request ids, logging, metrics), before everything else; the trace
  //    span (when tracing is on) first of all, so the request context and its first line see it.
  await registerTelemetry(app);
  const security = createSecurity(config, deps.keyring);
  registerObservability(app, { userIdOf: security.userIdOf, metrics: config.metrics });
  //    CORS (I3XD_CORS_ORIGINS) before authentication: browsers send preflights without a key, so they
  //    must be answered before the key check.
  await registerCors(app, config, { enforced: security.enforced, reason: config.authRequiredReason });
  //    Authentication and the per-key limits right after (src/security), so the key's name is the
  //    request's user id, and nothing else runs for a request without a valid key.
  await app.register(security.plugin, deps);

  // 2. Transport. The guide makes gzip a MUST whenever the client accepts it, so there is no size
  //    threshold; SSE streams are exempt (compression would hold events back; ADR 002).
  await app.register(compress, {
    global: true,
    threshold: 0,
    encodings: ["gzip", "deflate"],
    customTypes: /^application\/(?:[\w.+-]+\+)?json(?:;|$)|^text\/(?!event-stream)/,
  });
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: `${SERVER_NAME} i3X API`,
        version: SERVER_VERSION,
        description: "CESMII i3X 1.0 (Industrial Information Interface eXchange)",
      },
      // Every route takes an API key as a bearer token (docs/security.md); /v1/info opts out.
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer", description: "An i3xd API key (`i3xd keys create`)" },
        },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(async (docs) => {
    // The API description holds no data and is open; Swagger UI sets its own Content-Security-Policy
    // (with the hashes of its inline scripts). Its routes are made by the plugin, so they are declared here.
    docs.addHook("onRoute", (route) => {
      route.config = { ...route.config, scope: "open", ownContentSecurityPolicy: true };
    });
    await docs.register(swaggerUi, {
      routePrefix: "/docs",
      staticCSP: true,
      transformStaticCSP: docsCsp(config),
    });
  });

  // 3. Routes: probes and the scrape endpoint at the root (no auth), all i3X groups under /v1.
  await app.register(healthRoutes, deps);
  // The console at / (src/api/console.ts) uses only the public API, /health/* and /metrics.
  await app.register(consoleRoutes);
  // With I3XD_METRICS_PORT the scrape endpoint lives on its own listener (runtime.ts) instead.
  // I3XD_METRICS=false: no scrape endpoint at all (404), as no request metrics are recorded either.
  if (config.metrics && config.metricsPort === undefined) await app.register(metricsRoutes, deps);
  await app.register(
    async (v1) => {
      await v1.register(infoRoutes, deps);
      await v1.register(namespaceRoutes, deps);
      await v1.register(objectTypeRoutes, deps);
      await v1.register(relationshipTypeRoutes, deps);
      await v1.register(objectRoutes, deps);
      await v1.register(valueRoutes, deps);
      await v1.register(historyRoutes, deps);
      await v1.register(writeRoutes, deps);
      await v1.register(subscriptionRoutes, deps);
      if (config.testFaults) await v1.register(testFaultRoutes, deps);
      v1.get("/openapi.json", { config: { scope: "open" }, schema: { hide: true } }, async () =>
        app.swagger(),
      );
    },
    { prefix: "/v1" },
  );

  return app;
}

/** Turns Fastify's validation and parser errors into a detail a client can act on. */
function describeClientError(err: FastifyError): string {
  if (err.validation && err.validation.length > 0) {
    const v = err.validation[0];
    const where = err.validationContext ?? "body";
    const field = v.instancePath ? `${where}${v.instancePath.replace(/\//g, ".")}` : where;
    return `${field} ${v.message ?? "is invalid"}`;
  }
  if (err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    return "Request bodies must be JSON, sent with Content-Type: application/json";
  }
  return err.message;
}
