import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";

/**
 * Security headers on every response, set when the request arrives so that early answers (401, 429, 400)
 * carry them too. The API answers data that must not be cached, sniffed or framed; Swagger UI's routes
 * declare `ownContentSecurityPolicy` because it sets its own policy, with the hashes of its inline scripts.
 */
export function addResponseHeaders(app: FastifyInstance, config: Pick<Config, "tlsCert">): void {
  const tls = config.tlsCert !== undefined;
  const apiHeaders: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    ...(tls ? { "strict-transport-security": "max-age=31536000" } : {}),
  };
  const docsHeaders: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    ...(tls ? { "strict-transport-security": "max-age=31536000" } : {}),
  };
  app.addHook("onRequest", (request, reply, done) => {
    reply.headers(request.routeOptions.config.ownContentSecurityPolicy === true ? docsHeaders : apiHeaders);
    done();
  });
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route sets its own Content-Security-Policy (Swagger UI). */
    ownContentSecurityPolicy?: boolean;
  }
}
