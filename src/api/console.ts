import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync } from "fastify";
import { failureBody } from "../domain/errors.js";

/**
 * The page's policy: its own scripts and stylesheets only (no inline script or style element, no CDN), API
 * calls to this origin only. uPlot positions its elements through `element.style`, which CSP does not
 * govern, so no 'unsafe-inline' is needed for it.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Where `vite build` puts the console, relative to this module in `dist/` and in `src/` (tests, dev). */
const CONSOLE_DIRS = ["../console/", "../../dist/console/"];

/** The built console, or `undefined` when it has not been built (`npm run build` builds it). */
export function findConsoleDir(): string | undefined {
  for (const dir of CONSOLE_DIRS) {
    const path = fileURLToPath(new URL(dir, import.meta.url));
    if (existsSync(`${path}index.html`)) return path;
  }
  return undefined;
}

/**
 * `GET /` serves the console's page, `/console/*` its assets (file names carry a content hash, so they may
 * be cached for good; the page itself is revalidated so a new build is picked up). Open without a key:
 * the page asks for one and sends it with its own API calls.
 */
export const consoleRoutes: FastifyPluginAsync = async (app) => {
  // @fastify/static makes its own routes, so the scope is declared for every route of this plugin here.
  app.addHook("onRoute", (route) => {
    route.config = { ...route.config, scope: "open" };
  });
  const root = findConsoleDir();
  if (root === undefined) {
    app.get("/", { schema: { hide: true } }, async (_request, reply) =>
      reply
        .code(404)
        .send(failureBody(404, "The console is not built: run `npm run build`, then restart the server")),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: "/console/",
    cacheControl: false,
    index: false,
    schemaHide: true,
  });
  app.get("/", { schema: { hide: true } }, async (_request, reply) => reply.sendFile("index.html"));
  // After the security hook's API headers (registered earlier), so these replace its policy and caching.
  app.addHook("onSend", async (request, reply, payload) => {
    reply.header("content-security-policy", CONSOLE_CSP);
    const immutable = request.url.startsWith("/console/assets/") && reply.statusCode === 200;
    reply.header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
    return payload;
  });
};
