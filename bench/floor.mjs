// The floor under i3xd's read cases: a Fastify route that answers a fixed body the size of a 10-id value
// response, bare or with i3xd's own request observability (request context and ids, request logging,
// metrics, tracing; configured from the environment as the server is). What it costs is what no route
// of i3xd can avoid, so the read targets are measured against it in the same run (`BENCH_CASES=floor`).
import Fastify from "fastify";
import { loadConfig } from "../dist/config.js";
import { registerObservability } from "../dist/observability/http.js";
import { configureLogging } from "../dist/observability/logger.js";
import { registerTelemetry, startTelemetry } from "../dist/observability/telemetry.js";

const observed = process.env.FLOOR_OBSERVABILITY === "true";
const app = Fastify({ logger: false, genReqId: () => "" });
if (observed) {
  const config = loadConfig(process.env);
  // Logging first, so that nothing reaches stdout, where the harness reads the port.
  configureLogging(config);
  await startTelemetry(config.telemetry);
  await registerTelemetry(app);
  registerObservability(app, { metrics: config.metrics });
}

const body = JSON.stringify({
  success: true,
  results: Array.from({ length: 10 }, (_, i) => ({
    success: true,
    elementId: `pump-101-measurement-${i}`,
    result: {
      isComposition: false,
      value: 45.41 + i,
      quality: "Good",
      timestamp: "2026-11-29T14:08:51.676Z",
    },
  })),
});
app.post("/v1/objects/value", (_request, reply) => {
  reply.type("application/json; charset=utf-8");
  return body;
});
await app.listen({ port: 0, host: "127.0.0.1" });
process.stdout.write(`${JSON.stringify({ port: app.server.address().port })}\n`);
process.on("SIGTERM", () => app.close().then(() => process.exit(0)));
