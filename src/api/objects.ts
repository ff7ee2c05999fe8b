import type { FastifyPluginAsync } from "fastify";
import { bulkBody, successBody } from "../domain/errors.js";
import type { AppDeps } from "./deps.js";
import { RenderedBodies, RenderedBulk } from "./rendered.js";
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
  const listings = new RenderedBodies();
  const objects = new RenderedBulk("elementId");

  app.get<{ Querystring: { typeElementId?: string; includeMetadata?: string; root?: string } }>(
    "/objects",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Objects, optionally of one type and/or only the roots",
        querystring: objectsFilter,
        response: responses(success({ type: "array", items: objectInstance })),
      },
    },
    (request, reply) => {
      const { typeElementId, includeMetadata, root } = request.query;
      const filter = { typeElementId, includeMetadata: queryFlag(includeMetadata), root: queryFlag(root) };
      // Not an async handler: a listing the cache holds is sent without a promise, and as the bytes it
      // was rendered to the first time.
      const listing = services.model.listObjects(request.access, filter);
      if (listing instanceof Promise) return listing.then((read) => successBody(read.objects));
      if (listing.source === undefined) return successBody(listing.objects);
      return listings.send(reply, listing.source, () => successBody(listing.objects));
    },
  );

  app.post<{ Body: { elementIds: string[]; includeMetadata?: boolean } }>(
    "/objects/list",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "Objects by elementId (no values)",
        body: idsBody(config.maxBulkItems, { includeMetadata }),
        response: responses(bulk("elementId", objectInstance)),
      },
    },
    (request, reply) => {
      const { elementIds, includeMetadata } = request.body;
      const outcome = services.model.listObjectsById(request.access, elementIds, includeMetadata);
      if (outcome instanceof Promise) return outcome.then((read) => bulkBody("elementId", read.items));
      return (
        (outcome.sources === undefined ? undefined : objects.send(reply, outcome.items, outcome.sources)) ??
        bulkBody("elementId", outcome.items)
      );
    },
  );

  app.post<{ Body: { elementIds: string[]; relationshipType?: string | null; includeMetadata?: boolean } }>(
    "/objects/related",
    {
      config: { scope: "read" },
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
        await services.model.related(request.access, elementIds, relationshipType, includeMetadata),
      );
    },
  );
};
