import type { FastifyPluginAsync } from "fastify";
import { bulkBody, successBody } from "../domain/errors.js";
import type { AppDeps } from "./deps.js";
import { bulk, idsBody, namespaceFilter, relationshipType, responses, success } from "./schemas.js";

export const relationshipTypeRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  app.get<{ Querystring: { namespaceUri?: string } }>(
    "/relationshiptypes",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Relationship types, optionally of one namespace",
        querystring: namespaceFilter,
        response: responses(success({ type: "array", items: relationshipType })),
      },
    },
    async (request) => successBody(await services.model.listRelationshipTypes(request.query.namespaceUri)),
  );

  app.post<{ Body: { elementIds: string[] } }>(
    "/relationshiptypes/query",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Relationship types by elementId",
        body: idsBody(config.maxBulkItems),
        response: responses(bulk("elementId", relationshipType)),
      },
    },
    async (request) =>
      bulkBody("elementId", await services.model.queryRelationshipTypes(request.body.elementIds)),
  );
};
