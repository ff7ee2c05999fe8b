import type { FastifyPluginAsync } from "fastify";
import type { AppDeps } from "./deps.js";
import { historyBodySerializer } from "./history-body.js";
import { JSON_CONTENT_TYPE } from "./rendered.js";
import { sendBulk } from "./reply.js";
import { bulk, historyResult, idsBody, maxDepth, responses } from "./schemas.js";

const time = (what: string) => ({ type: "string", description: `${what} (RFC 3339 UTC, inclusive)` });

export const historyRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  const body = bulk("elementId", historyResult);
  const serializeHistoryBody = historyBodySerializer(body);
  app.post<{ Body: { elementIds: string[]; startTime: string; endTime: string; maxDepth?: number } }>(
    "/objects/history",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Query"],
        summary: "Stored values in a time range, ascending",
        body: idsBody(
          config.maxBulkItems,
          { startTime: time("Range start"), endTime: time("Range end"), maxDepth },
          ["startTime", "endTime"],
        ),
        response: responses(body, { partial: true }),
      },
    },
    async (request, reply) => {
      const outcome = await services.values.history(request.access, request.body);
      // The response schema above still documents the body; this writes it with the series as stored text.
      reply.type(JSON_CONTENT_TYPE);
      return serializeHistoryBody(sendBulk(reply, "elementId", outcome));
    },
  );
};
