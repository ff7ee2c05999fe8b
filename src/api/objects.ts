import type { FastifyPluginAsync } from "fastify";
import type { AppDeps } from "../app.js";
import { bulkBody, successBody } from "../domain/errors.js";
import {
  bulk,
  idsBody,
  objectInstance,
  objectsFilter,
  queryFlag,
  relatedEntry,
  responses,
  success,
} from "./schemas.js";

const includeMetadata = { type: "boolean", default: false, description: "Add each object's metadata" };

export const objectRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  app.get<{ Querystring: { typeElementId?: string; includeMetadata?: string; root?: string } }>(
    "/objects",
    {
      schema: {
        tags: ["Exploratory"],
        summary: "Objects, optionally of one type and/or only the roots",
        querystring: objectsFilter,
        response: responses(success({ type: "array", items: objectInstance })),
      },
    },
    async (request) => {
      const { typeElementId, includeMetadata, root } = request.query;
      return successBody(
        await services.model.listObjects({
          typeElementId,
          includeMetadata: queryFlag(includeMetadata),
          root: queryFlag(root),
        }),
      );
    },
  );

  app.post<{ Body: { elementIds: string[]; includeMetadata?: boolean } }>(
    "/objects/list",
    {
      schema: {
        tags: ["Exploratory"],
        summary: "Objects by elementId (no values)",
        body: idsBody(config.maxBulkItems, { includeMetadata }),
        response: responses(bulk("elementId", objectInstance)),
      },
    },
    async (request) => {
      const { elementIds, includeMetadata } = request.body;
      return bulkBody("elementId", await services.model.listObjectsById(elementIds, includeMetadata));
    },
  );

  app.post<{ Body: { elementIds: string[]; relationshipType?: string | null; includeMetadata?: boolean } }>(
    "/objects/related",
    {
      schema: {
        tags: ["Exploratory"],
        summary: "Objects related to each elementId, in both directions",
        body: idsBody(config.maxBulkItems, {
          relationshipType: {
            type: ["string", "null"],
            description:
              "Only this relationship type (as seen from the requested object); null or absent: all",
          },
          includeMetadata,
        }),
        response: responses(bulk("elementId", { type: "array", items: relatedEntry })),
      },
    },
    async (request) => {
      const { elementIds, relationshipType, includeMetadata } = request.body;
      return bulkBody(
        "elementId",
        await services.model.related(elementIds, relationshipType, includeMetadata),
      );
    },
  );
};
