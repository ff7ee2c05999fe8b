import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type LoggedServer, type LogLine, startLoggedServer } from "../helpers/logs.js";
import { type Json, ROOT } from "./tools.js";

/** A shell glob (`*`, `?`) as an anchored regular expression. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, "[^/]*")
    .replace(/\?/g, "[^/]");
  return new RegExp(`^${body}$`);
}

/**
 * The promtail, Alloy and Logstash examples read fields by name from the log file. This checks them against
 * what a real server writes, so a renamed field or a changed file naming breaks a test, not a pipeline.
 */
describe("log pipeline examples match the server's log output", () => {
  let server: LoggedServer;
  let lines: LogLine[];
  const requestId = "ops-pipeline-check-1";

  beforeAll(async () => {
    server = await startLoggedServer();
    const res = await fetch(`${server.url}/v1/namespaces`, { headers: { "x-request-id": requestId } });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    await server.waitForLog(
      "the request's completion line",
      (l) => l.request_id === requestId && l.status_code === 200,
    );
    lines = server.logLines();
  });

  afterAll(async () => {
    await server?.close();
  });

  it("every line has the fields the pipelines extract and parse", () => {
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) {
      // promtail/Alloy `timestamp` stage (RFC3339Nano) and Logstash's `date` filter (ISO8601).
      expect(line.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      // `level` is the only label besides application: a bounded set.
      expect(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]).toContain(line.level);
      expect(line.logger).toMatch(/^i3xd\./);
      expect(typeof line.message).toBe("string");
    }
  });

  it("request lines carry request_id, status_code and duration_ms", () => {
    const mine = lines.filter((l) => l.request_id === requestId);
    expect(mine.map((l) => l.message)).toEqual(
      expect.arrayContaining(["Request started", "Request completed"]),
    );
    const done = mine.find((l) => l.message === "Request completed") as LogLine;
    expect(typeof done.status_code).toBe("number");
    expect(typeof done.duration_ms).toBe("number");
  });

  it("the promtail and Alloy file globs match the rotated file names the server writes", () => {
    const promtail: Json = parse(readFileSync(path.join(ROOT, "ops/loki/promtail.yml"), "utf8"));
    const promtailGlob = path.basename(promtail.scrape_configs[0].static_configs[0].labels.__path__);
    const alloy = readFileSync(path.join(ROOT, "ops/loki/config.alloy"), "utf8");
    const alloyGlob = path.basename(/"__path__"\s*=\s*"([^"]+)"/.exec(alloy)?.[1] ?? "");
    // Both examples assume LOG_FILE=/var/log/i3xd/i3xd.log, as the test server's file is named.
    expect(path.basename(server.logFile)).toBe("i3xd.log");
    const files = server.logFiles().map((f) => path.basename(f));
    expect(files.length).toBeGreaterThan(0);
    for (const glob of [promtailGlob, alloyGlob]) {
      for (const f of files) expect(f).toMatch(globToRegExp(glob));
    }
  });
});
