import type { AddressInfo } from "node:net";
import { Server as TlsServer } from "node:tls";
import Fastify, { type FastifyError } from "fastify";
import type { AppDeps } from "../api/deps.js";
import { metricsRoutes } from "../api/metrics.js";
import { failureBody } from "../domain/errors.js";
import { bearerToken, safeEqual } from "./authentication.js";
import { serverOptions } from "./transport.js";

export interface MetricsListener {
  /** e.g. `http://127.0.0.1:9464` (the scrape path is `/metrics`). */
  url: string;
  close(): Promise<void>;
}

/**
 * `GET /metrics` on its own port (`I3XD_METRICS_PORT`), so it can be exposed to the monitoring network
 * only. Same TLS settings as the API; `I3XD_METRICS_TOKEN` still applies when set. Nothing else is served.
 */
export async function startMetricsListener(deps: AppDeps): Promise<MetricsListener> {
  const { config } = deps;
  const app = Fastify({
    logger: false,
    ...serverOptions(config),
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    const status = typeof err.statusCode === "number" && err.statusCode >= 400 ? err.statusCode : 500;
    return reply
      .code(status)
      .send(failureBody(status, status >= 500 ? "Metrics collection failed" : err.message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(
        failureBody(
          404,
          `Only GET /metrics is served here, not ${request.method} ${request.url.split("?")[0]}`,
        ),
      ),
  );
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-content-type-options", "nosniff").header("cache-control", "no-store");
    const token = config.metricsToken;
    if (token === undefined) return done();
    const given = bearerToken(request.headers.authorization);
    if (typeof given === "string" && safeEqual(given, token)) return done();
    reply
      .code(401)
      .header("www-authenticate", 'Bearer realm="i3xd-metrics"')
      .send(failureBody(401, "GET /metrics needs the metrics token (I3XD_METRICS_TOKEN) as Bearer"));
  });
  await app.register(metricsRoutes, deps);
  await app.listen({ host: config.metricsHost, port: config.metricsPort ?? 0 });
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const scheme = app.server instanceof TlsServer ? "https" : "http";
  return { url: `${scheme}://${host}:${addr.port}`, close: () => app.close() };
}
