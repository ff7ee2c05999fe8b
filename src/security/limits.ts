import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { failureBody, I3xError } from "../domain/errors.js";
import { ownerOf, StreamShares } from "./quotas.js";

/**
 * The limits that need to know who is asking: concurrent streams (per key, per address and for the
 * process) and the request rate per API key (or per client address when running open), and the Host rule
 * for HTTP/1.1 (JSON depth: `json.ts`). The per-key limits are registered after authentication, so the key
 * is known.
 */

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route holds an SSE stream open: it counts against the stream shares (`quotas.ts`). */
    stream?: boolean;
  }
}

/** HTTP/1.1 requires Host; answered before authentication, with the failure envelope. */
export function requireHostHeader(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    if (request.headers.host === undefined && request.raw.httpVersion === "1.1") {
      reply.code(400).send(failureBody(400, "HTTP/1.1 requests need a Host header"));
      return;
    }
    done();
  });
}

/** Open SSE streams, counted per key (or address when open), per address and for the process (quotas.ts). */
export function limitStreams(
  app: FastifyInstance,
  config: Pick<Config, "maxStreamsPerKey" | "limits">,
): void {
  const streamShares = new StreamShares(config);
  app.addHook("preHandler", (request, reply, done) => {
    if (request.is404 || request.routeOptions.config.stream !== true) return done();
    if (streamShares.admit(request, reply)) done();
  });
}

export async function limitRate(
  app: FastifyInstance,
  config: Pick<Config, "rateLimitMax" | "rateLimitWindowMs">,
  enforced: boolean,
): Promise<void> {
  if (config.rateLimitMax > 0) {
    const windowText = describeWindow(config.rateLimitWindowMs);
    await app.register(rateLimit, {
      global: true,
      max: config.rateLimitMax,
      timeWindow: config.rateLimitWindowMs,
      keyGenerator: ownerOf,
      // Probes and scrapes come from infrastructure at a fixed pace; throttling them helps nobody.
      allowList: (request) => {
        const url = request.routeOptions.url;
        return url === "/metrics" || (url?.startsWith("/health/") ?? false);
      },
      errorResponseBuilder: (_request, ctx) =>
        new I3xError(
          429,
          `Rate limit exceeded: at most ${ctx.max} requests per ${windowText} per ${enforced ? "API key" : "client address"}; retry in ${ctx.after}`,
        ),
    });
  }
}

function describeWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? "hour" : `${ms / 3_600_000} hours`;
  if (ms % 60_000 === 0) return ms === 60_000 ? "minute" : `${ms / 60_000} minutes`;
  if (ms % 1000 === 0) return ms === 1000 ? "second" : `${ms / 1000} seconds`;
  return `${ms} ms`;
}
