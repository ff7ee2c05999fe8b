import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import type { Config } from "./config.js";
import { I3xError, failureBody } from "./domain/errors.js";
import { getLogger } from "./observability/logger.js";
import type { Services } from "./services/index.js";
import type { Store } from "./store/store.js";

export interface AppDeps {
  config: Config;
  store: Store;
  services: Services;
}

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
    disableRequestLogging: true,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  app.setErrorHandler((err: FastifyError | I3xError, request, reply) => {
    if (err instanceof I3xError) {
      return reply.code(err.status).send(failureBody(err.status, err.message, err.title));
    }
    const status = typeof err.statusCode === "number" && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) {
      log.error({ exception: err, method: request.method, path: request.url }, "Request failed");
      return reply.code(status).send(failureBody(status, "The server could not complete the request"));
    }
    return reply.code(status).send(failureBody(status, describeClientError(err)));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(failureBody(404, `No such endpoint: ${request.method} ${request.url.split("?")[0]}`));
  });

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
  return err.message;
}
