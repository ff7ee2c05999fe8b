import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChildServer, startChildServer } from "../telemetry/child.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** 1-based line of the first line in `file` after the line containing `after` that contains `text`. */
function lineOf(file: string, after: string, text: string): number {
  const lines = readFileSync(path.join(ROOT, file), "utf8").split("\n");
  const start = lines.findIndex((l) => l.includes(after));
  const i = lines.findIndex((l, n) => n > start && l.includes(text));
  expect(start, `${after} in ${file}`).toBeGreaterThanOrEqual(0);
  expect(i, `${text} in ${file}`).toBeGreaterThan(start);
  return i + 1;
}

/**
 * `LOG_CALLER=true` puts the logging call's module, function and line on every line: through the server
 * as it runs (`node --import tsx`, so TypeScript lines), for pino's own lines and the request log's.
 */
describe("LOG_CALLER", () => {
  let server: ChildServer;

  beforeAll(async () => {
    server = await startChildServer({ LOG_CALLER: "true" });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.url}/v1/objects/list`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": `caller-${i}` },
        body: JSON.stringify({ elementIds: ["pump-101"] }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    await server.stop();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("names the request log's calls, the same for every request", () => {
    const started = server.lines().filter((l) => l.message === "Request started" && l.request_id);
    const completed = server.lines().filter((l) => l.message === "Request completed" && l.request_id);
    expect(started).toHaveLength(3);
    expect(completed).toHaveLength(3);
    const startedAt = lineOf("src/observability/http.ts", "function logStarted(", "writeFlatLine(");
    const completedAt = lineOf("src/observability/http.ts", "function logCompleted(", "writeFlatLine(");
    for (const line of started) {
      expect(line).toMatchObject({
        module: "src/observability/http.ts",
        function: "logStarted",
        line: startedAt,
      });
    }
    for (const line of completed) {
      expect(line).toMatchObject({
        module: "src/observability/http.ts",
        function: "logCompleted",
        line: completedAt,
      });
    }
  });

  it("names a component's own pino call", () => {
    const ready = server.lines().find((l) => l.message === "i3xd started");
    expect(ready).toMatchObject({
      module: "src/runtime.ts",
      function: "startServer",
      line: lineOf("src/runtime.ts", "function startServer(", "log.info("),
    });
  });
});
