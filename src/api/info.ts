import type { FastifyPluginAsync } from "fastify";
import { successBody } from "../domain/errors.js";
import { SERVER_NAME, SERVER_VERSION } from "../version.js";
import type { AppDeps } from "./deps.js";
import { responses, success } from "./schemas.js";

const SPEC_VERSION = "1.0";

const serverInfo = {
  type: "object",
  properties: {
    specVersion: { type: "string" },
    serverVersion: { type: "string" },
    serverName: { type: "string" },
    capabilities: {
      type: "object",
      properties: {
        query: { type: "object", properties: { history: { type: "boolean" } }, required: ["history"] },
        update: {
          type: "object",
          properties: { current: { type: "boolean" }, history: { type: "boolean" } },
          required: ["current", "history"],
        },
        subscribe: { type: "object", properties: { stream: { type: "boolean" } }, required: ["stream"] },
      },
      required: ["query", "update", "subscribe"],
    },
  },
  // All four are always sent; listing them keeps the serialized order readable (specVersion first).
  required: ["specVersion", "serverVersion", "serverName", "capabilities"],
} as const;

/**
 * `GET /v1/info`. The capabilities are read from the routes actually registered, so the answer stays
 * truthful as optional endpoints come and go; it is computed once, after start-up has finished.
 */
export const infoRoutes: FastifyPluginAsync<AppDeps> = async (app) => {
  let body: ReturnType<typeof build> | undefined;
  const has = (method: string, url: string) => app.hasRoute({ method, url: `/v1${url}` });
  const build = () =>
    successBody({
      specVersion: SPEC_VERSION,
      serverVersion: SERVER_VERSION,
      serverName: SERVER_NAME,
      capabilities: {
        query: { history: has("POST", "/objects/history") },
        update: { current: has("PUT", "/objects/value"), history: has("PUT", "/objects/history") },
        subscribe: { stream: has("POST", "/subscriptions/stream") },
      },
    });

  app.get(
    "/info",
    {
      config: { scope: "open" },
      schema: {
        tags: ["Info"],
        summary: "Server version and capabilities (no authentication)",
        security: [],
        response: responses(success(serverInfo)),
      },
    },
    async () => {
      body ??= build();
      return body;
    },
  );
};
