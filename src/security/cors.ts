import cors, { type FastifyCorsOptions } from "@fastify/cors";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { ConfigError } from "../config-vars.js";
import { getLogger } from "../observability/logger.js";
import { corsRejected } from "../observability/metrics.js";

/**
 * CORS for browser applications served from other origins (`I3XD_CORS_ORIGINS`), for `/v1` only: the
 * probes, `/metrics` and `/docs` are for infrastructure and people, never for another site's scripts.
 *
 * Keys travel in the `Authorization` header, never in cookies, so there is no credentials mode: a page can
 * only use a key its user gave it, and a listed origin gains nothing from a visitor's browser alone.
 *
 * Must be registered before authentication: browsers send preflights without the `Authorization` header,
 * and @fastify/cors answers them in its onRequest hook, so they end before the key check runs. The request
 * that follows is authenticated as any other.
 */

/** Every method a `/v1` route uses (the preflight tests check each route's method against it). */
export const CORS_METHODS = ["GET", "POST", "PUT"] as const;
/** Request headers an i3X client sends beyond the ones browsers allow anyway. */
export const CORS_ALLOWED_HEADERS = [
  "Authorization",
  "Content-Type",
  "Content-Encoding",
  "X-Request-ID",
  "traceparent",
] as const;
/** Response headers a page may read: the id to quote in a report, and when to retry after a 429 or 503. */
export const CORS_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After"] as const;
/** How long a browser reuses a preflight answer, seconds, so a changed list reaches pages within it. */
export const CORS_MAX_AGE_SECONDS = 600;

const API_PREFIX = "/v1/";

const log = getLogger("i3xd.security");

export interface CorsAuth {
  /** API keys are checked on this server. */
  enforced: boolean;
  /** Why, when the configuration demands keys; otherwise keys were simply configured. */
  reason: string | undefined;
}

/** Adds CORS when `I3XD_CORS_ORIGINS` is set; without it the server answers as if CORS did not exist. */
export async function registerCors(app: FastifyInstance, config: Config, auth: CorsAuth): Promise<void> {
  const listed = config.corsOrigins;
  if (listed === undefined) return;
  if (listed === "*" && auth.enforced) {
    throw new ConfigError(
      `I3XD_CORS_ORIGINS=* is allowed only while authentication is off, and it is on ` +
        `(${auth.reason ?? "API keys are configured"}): list the origins of your browser applications ` +
        "instead, e.g. I3XD_CORS_ORIGINS=https://explorer.example.com",
    );
  }
  if (listed === "*") {
    log.warn(
      "I3XD_CORS_ORIGINS=*: any web page a browser on this machine opens may read and write this server " +
        "through it; list the origins of your applications instead when you are done experimenting",
    );
  } else log.info({ origins: listed }, "Browser applications on these origins may call /v1 (CORS)");
  const origins = listed === "*" ? undefined : new Set(listed);
  const common: FastifyCorsOptions = {
    methods: [...CORS_METHODS],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: CORS_MAX_AGE_SECONDS,
    credentials: false,
  };
  // `true` reflects the request's Origin, which the check below has already found in the list.
  const allow: FastifyCorsOptions = { ...common, origin: origins === undefined ? "*" : true };
  const deny: FastifyCorsOptions = { ...common, origin: false };

  const optionsFor = (request: FastifyRequest): FastifyCorsOptions => {
    const origin = request.headers.origin;
    if (origin === undefined || !request.url.startsWith(API_PREFIX)) return deny;
    const preflight = request.method === "OPTIONS";
    // An OPTIONS that is no preflight goes on like any other request (to the key check, then a 404).
    if (preflight && request.headers["access-control-request-method"] === undefined) return deny;
    if (origins === undefined || origins.has(origin)) return allow;
    if (!fromThisServer(request, origin)) corsRejected.inc({ kind: preflight ? "preflight" : "request" });
    return deny;
  };
  await app.register(cors, { delegator: (request, callback) => callback(null, optionsFor(request)) });
}

/**
 * Browsers send `Origin` on same-origin POSTs too (Swagger UI at `/docs` trying a call, say); those need no
 * CORS and are not rejections.
 */
function fromThisServer(request: FastifyRequest, origin: string): boolean {
  const host = request.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}
