// CPU per request of the request log's two lines (started, completed) inside a request context, written
// to a destination that drops them: what logging a request costs before any I/O, through pino's own path
// and through the request log's writer (writeFlatLine).
// Usage: node bench/log-lines.mjs [built checkout, default: this one]
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.resolve(process.argv[2] ?? ".");
const load = (file) => import(pathToFileURL(path.join(root, "dist", file)).href);
const { getLogger, setRootLogger, writeFlatLine } = await load("observability/logger.js");
const { runInRequest } = await load("observability/context.js");

setRootLogger("info", { write: () => true });
const log = getLogger("i3xd.http");
const started = { method: "POST", path: "/v1/objects/value", ip: "127.0.0.1", user_agent: "autocannon" };
const completed = { method: "POST", path: "/v1/objects/value", status_code: 200, duration_ms: 0.412 };
const context = {
  requestId: "a5b1c2d3-0000-4000-8000-000000000001",
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
};
const requests = 50_000;
const paths = {
  pino: (i) => {
    log.info(started, "Request started");
    log.info({ ...completed, response_size: i }, "Request completed");
  },
  writeFlatLine: (i) => {
    writeFlatLine(log, "info", started, "Request started");
    writeFlatLine(log, "info", { ...completed, response_size: i }, "Request completed");
  },
};
for (const [name, emit] of Object.entries(paths)) {
  const perRequest = [];
  for (let run = 0; run < 7; run++) {
    const before = process.cpuUsage();
    runInRequest(context, () => {
      for (let i = 0; i < requests; i++) emit(i);
    });
    const used = process.cpuUsage(before);
    perRequest.push((used.user + used.system) / requests);
  }
  perRequest.sort((a, b) => a - b);
  console.log(`${name}: ${perRequest[3].toFixed(2)} µs CPU per request (median of 7 × ${requests})`);
}
