import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { failureBody, I3xError } from "../domain/errors.js";

/**
 * The limits that need to know who is asking: concurrent streams and the request rate, per API key (or per
 * client address when running open), and the Host rule for HTTP/1.1 (JSON depth: `json.ts`). The per-key
 * limits are registered after authentication, so the key is known.
 */

const STREAM_ROUTE = "POST /v1/subscriptions/stream";

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

export function limitStreamsPerKey(app: FastifyInstance, config: Pick<Config, "maxStreamsPerKey">): void {
  const streams = new Map<string, number>();
  app.addHook("preHandler", (request, reply, done) => {
    const url = request.routeOptions.url;
    if (url === undefined || !url.startsWith("/v1/")) return done();
    const route = `${request.method} ${url}`;
    const p = request.principal;
    if (route === STREAM_ROUTE) {
      const who = p ? `key:${p.id}` : `ip:${request.ip}`;
      const open = streams.get(who) ?? 0;
      if (open >= config.maxStreamsPerKey) {
        reply
          .code(429)
          .send(
            failureBody(
              429,
              `At most ${config.maxStreamsPerKey} streams may be open at once per ${p ? "API key" : "client address"}; close one first`,
            ),
          );
        return;
      }
      streams.set(who, open + 1);
      reply.raw.once("close", () => {
        const n = (streams.get(who) ?? 1) - 1;
        if (n > 0) streams.set(who, n);
        else streams.delete(who);
      });
    }
    done();
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
      keyGenerator: (request) => (request.principal ? `key:${request.principal.id}` : `ip:${request.ip}`),
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
