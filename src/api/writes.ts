import type { FastifyPluginAsync } from "fastify";
import type { WriteUpdate } from "../services/writes.js";
import type { AppDeps } from "./deps.js";
import { sendBulk } from "./reply.js";
import { bulk, responses } from "./schemas.js";

/**
 * The body schema checks structure only. Quality, timestamp and the value itself are judged per item by the
 * write service, so one bad item fails alone (with its own 400) instead of rejecting the whole request.
 */
function updatesBody(maxItems: number, history: boolean) {
  const required = history ? "required" : "optional";
  return {
    type: "object",
    properties: {
      updates: {
        type: "array",
        maxItems,
        description: `elementId/VQT pairs to write (at most ${maxItems}); results come back in the same order`,
        items: {
          type: "object",
          properties: {
            elementId: { type: "string" },
            value: {
              type: "object",
              description: "VQT; the value replaces the stored one entirely and must match the type schema",
              properties: {
                value: { description: "Any JSON value; null only with quality Bad or GoodNoData" },
                quality: {
                  description: `Good, GoodNoData, Bad or Uncertain (${required}${history ? "" : ", default Good"})`,
                },
                timestamp: {
                  description: history
                    ? "RFC 3339 UTC (Z); selects the history record to create or replace (required)"
                    : "RFC 3339 UTC (Z) (optional, default: time of receipt)",
                },
              },
              required: ["value"],
            },
          },
          required: ["elementId", "value"],
        },
      },
    },
    required: ["updates"],
  };
}

const writeResponse = responses(
  bulk("elementId", { type: "null", description: "Writes do not echo the value" }),
);

/** `PUT /v1/objects/value` and `PUT /v1/objects/history`, both through the one write path. */
export const writeRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  app.put<{ Body: { updates: WriteUpdate[] } }>(
    "/objects/value",
    {
      config: { scope: "write" },
      schema: {
        tags: ["Update"],
        summary: "Replace the current value of objects",
        body: updatesBody(config.maxBulkItems, false),
        response: writeResponse,
      },
    },
    async (request, reply) =>
      sendBulk(reply, "elementId", {
        items: await services.writes.writeCurrent(request.access, request.body.updates),
      }),
  );

  app.put<{ Body: { updates: WriteUpdate[] } }>(
    "/objects/history",
    {
      config: { scope: "write" },
      schema: {
        tags: ["Update"],
        summary: "Create or replace history records of objects",
        body: updatesBody(config.maxBulkItems, true),
        response: writeResponse,
      },
    },
    async (request, reply) =>
      sendBulk(reply, "elementId", {
        items: await services.writes.writeHistory(request.access, request.body.updates),
      }),
  );
};
