import type { FastifyPluginAsync } from "fastify";
import type { AppDeps } from "./deps.js";
import { RenderedBulk } from "./rendered.js";
import { sendBulk } from "./reply.js";
import { bulk, currentValueResult, idsBody, maxDepth, responses } from "./schemas.js";

export const valueRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  const values = new RenderedBulk("elementId");

  app.post<{ Body: { elementIds: string[]; maxDepth?: number } }>(
    "/objects/value",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Query"],
        summary: "Last known values, with components up to maxDepth",
        body: idsBody(config.maxBulkItems, { maxDepth }),
        response: responses(bulk("elementId", currentValueResult), { partial: true }),
      },
    },
    (request, reply) => {
      const { elementIds, maxDepth } = request.body;
      // Not an async handler: an answer the cache holds whole comes synchronously and is sent without a
      // promise, from rendered items.
      const outcome = services.values.current(request.access, elementIds, maxDepth);
      if (outcome instanceof Promise) return outcome.then((read) => sendBulk(reply, "elementId", read));
      return (
        (outcome.sources === undefined || outcome.partial !== undefined
          ? undefined
          : values.send(reply, outcome.items, outcome.sources)) ?? sendBulk(reply, "elementId", outcome)
      );
    },
  );
};
