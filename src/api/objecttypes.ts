import type { FastifyPluginAsync } from "fastify";
import { bulkBody, successBody } from "../domain/errors.js";
import type { AppDeps } from "./deps.js";
import { bulk, idsBody, namespaceFilter, objectType, responses, success } from "./schemas.js";

export const objectTypeRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  app.get<{ Querystring: { namespaceUri?: string } }>(
    "/objecttypes",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Object types, optionally of one namespace",
        querystring: namespaceFilter,
        response: responses(success({ type: "array", items: objectType })),
      },
    },
    async (request) => successBody(await services.model.listObjectTypes(request.query.namespaceUri)),
  );

  app.post<{ Body: { elementIds: string[] } }>(
    "/objecttypes/query",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Object types by elementId",
        body: idsBody(config.maxBulkItems),
        response: responses(bulk("elementId", objectType)),
      },
    },
    async (request) => bulkBody("elementId", await services.model.queryObjectTypes(request.body.elementIds)),
  );
};
