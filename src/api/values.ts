import type { FastifyPluginAsync } from "fastify";
import type { AppDeps } from "../app.js";
import { sendBulk } from "./reply.js";
import { bulk, currentValueResult, idsBody, maxDepth, responses } from "./schemas.js";

export const valueRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  app.post<{ Body: { elementIds: string[]; maxDepth?: number } }>(
    "/objects/value",
    {
      schema: {
        tags: ["Query"],
        summary: "Last known values, with components up to maxDepth",
        body: idsBody(config.maxBulkItems, { maxDepth }),
        response: responses(bulk("elementId", currentValueResult), { partial: true }),
      },
    },
    async (request, reply) => {
      const { elementIds, maxDepth } = request.body;
      return sendBulk(reply, "elementId", await services.values.current(elementIds, maxDepth));
    },
  );
};
