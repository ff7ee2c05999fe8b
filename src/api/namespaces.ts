import type { FastifyPluginAsync } from "fastify";
import { successBody } from "../domain/errors.js";
import type { AppDeps } from "./deps.js";
import { namespace, responses, success } from "./schemas.js";

export const namespaceRoutes: FastifyPluginAsync<AppDeps> = async (app, { services }) => {
  app.get(
    "/namespaces",
    {
      config: { scope: "read" },
      schema: {
        tags: ["Exploratory"],
        summary: "All namespaces",
        response: responses(success({ type: "array", items: namespace })),
      },
    },
    async () => successBody(await services.model.listNamespaces()),
  );
};
