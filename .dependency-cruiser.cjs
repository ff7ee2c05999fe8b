/**
 * The layers of src/ (docs/adr and /work/shared/DESIGN.md): api → services → store, with domain at the
 * bottom and observability beside them. `npm run lint` fails on any import that runs the other way or in
 * a circle. Type-only imports count too: a type import is still a dependency a reader has to follow.
 * Parsed with swc: TypeScript 7.0's compiler API lacks what dependency-cruiser needs, hence its
 * "missing-tsc-transpiler" notice, which does not mean sources were missed (swc reads them all).
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: "domain-imports-nothing-of-ours",
      comment: "domain/ is the bottom layer: plain types and rules every other layer may use.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { path: "^src/", pathNot: "^src/domain/" },
    },
    {
      name: "store-below-services-and-api",
      comment: "Adapters implement the store port; they never call the services or the HTTP layer.",
      severity: "error",
      from: { path: "^src/store/" },
      to: { path: "^src/(services|api)/" },
    },
    {
      name: "services-below-api",
      comment: "The services are what the HTTP layer calls; they know neither the routes nor Fastify.",
      severity: "error",
      from: { path: "^src/services/" },
      to: { path: ["^src/api/", "(^|/)node_modules/(fastify|@fastify/)"] },
    },
    {
      name: "model-below-services-and-api",
      comment: "The model file format and its validation are shared by the store, the services and the CLI.",
      severity: "error",
      from: { path: "^src/model/" },
      to: { path: "^src/(services|api)/" },
    },
    {
      name: "observability-beside-the-layers",
      comment: "Logging, metrics and tracing are used by every layer, so they may not depend on one.",
      severity: "error",
      from: { path: "^src/observability/" },
      to: { path: "^src/(store|services|api)/" },
    },
    {
      name: "connectors-above-the-core",
      comment:
        "Connectors use the services' write and model paths; nothing below them may know a connector exists " +
        "(the services see them only through the port in services/connectors.ts).",
      severity: "error",
      from: { path: "^src/(services|store|domain|model|observability)/" },
      to: { path: "^src/connectors/" },
    },
    {
      name: "connectors-below-api",
      comment: "Connectors feed the services; they never call the HTTP layer or Fastify.",
      severity: "error",
      from: { path: "^src/connectors/" },
      to: { path: ["^src/api/", "(^|/)node_modules/(fastify|@fastify/)"] },
    },
    {
      name: "connectors-reach-the-store-through-the-services",
      comment:
        "A connector's points and model changes go through the services (validation, history, change feed); " +
        "leadership comes as a port from the composition root.",
      severity: "error",
      from: { path: "^src/connectors/" },
      to: { path: ["^src/store/", "(^|/)node_modules/pg/"] },
    },
    {
      name: "no-circular",
      comment: "An import cycle makes module order matter and every file in it a unit.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".mjs", ".js", ".json"],
    },
  },
};
