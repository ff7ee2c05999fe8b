import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleValue } from "../helpers/metrics.js";
import { type ChildServer, inParallel, startChildServer } from "./child.js";
import { startLogstashReceiver, startLokiReceiver } from "./receivers.js";

/**
 * The same lines go to stdout (the primary destination) and to both shippers; after a graceful shutdown
 * both shippers must have every line stdout has from the moment shipping started, in the same order.
 */
describe("log shipping to Loki and Logstash", () => {
  let loki: Awaited<ReturnType<typeof startLokiReceiver>>;
  let logstash: Awaited<ReturnType<typeof startLogstashReceiver>>;
  let server: ChildServer;
  let stdout: string[] = [];
  let exitCode: number | null = null;
  let droppedWhileRunning = -1;

  beforeAll(async () => {
    loki = await startLokiReceiver();
    logstash = await startLogstashReceiver();
    server = await startChildServer({
      LOKI_URL: loki.url,
      LOKI_USERNAME: "12345",
      LOKI_PASSWORD: "glc_token",
      LOKI_TENANT: "plant-ops",
      LOGSTASH_HOST: logstash.host,
      LOGSTASH_PORT: String(logstash.port),
      I3XD_TEST_FAULTS: "1",
    });
    await inParallel(200, 8, async (i) => {
      const res = await fetch(`${server.url}/v1/objects/list`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": `ship-${i}` },
        body: JSON.stringify({ elementIds: ["pump-101"] }),
      });
      await res.arrayBuffer();
    });
    // An ERROR line: a stream of its own.
    await fetch(`${server.url}/v1/_test/fault`, { method: "POST" });
    const samples = await server.metrics();
    droppedWhileRunning =
      sampleValue(samples, "telemetry_dropped_total", { sink: "loki" }) +
      sampleValue(samples, "telemetry_dropped_total", { sink: "logstash" });
    exitCode = await server.stop();
    stdout = server.rawLines();
  });
  afterAll(async () => {
    await server?.stop();
    await loki?.close();
    await logstash?.close();
  });

  /** stdout from the first line the shipper received on. */
  function expectedFrom(first: string): string[] {
    const start = stdout.indexOf(first);
    expect(start, "the shipper's first line is one stdout has").toBeGreaterThanOrEqual(0);
    return stdout.slice(start);
  }

  it("shuts down cleanly having dropped nothing", () => {
    expect(exitCode).toBe(0);
    expect(droppedWhileRunning).toBe(0);
  });

  it("pushes every line to Loki, complete and in order, as JSON streams labelled application and level", () => {
    const entries = loki.entries();
    expect(entries.length).toBeGreaterThan(400);
    const expected = expectedFrom(entries[0].line);
    expect(entries.map((e) => e.line)).toEqual(expected);
    expect(expected.some((l) => l.includes('"message":"i3xd started"'))).toBe(true);
    expect(expected.at(-1)).toContain('"message":"Stopped"');
    for (const e of entries) {
      expect(e.labels).toEqual({ application: "i3xd", level: JSON.parse(e.line).level });
    }
    const levels = new Set(entries.map((e) => e.labels.level));
    expect(levels.has("INFO") && levels.has("ERROR")).toBe(true);
    // Batched, not a request per line.
    expect(loki.pushes().length).toBeLessThan(entries.length / 10);
  });

  it("authenticates to Loki with basic auth and names the tenant", () => {
    for (const push of loki.pushes()) {
      expect(push.headers.authorization).toBe(`Basic ${Buffer.from("12345:glc_token").toString("base64")}`);
      expect(push.headers["x-scope-orgid"]).toBe("plant-ops");
      expect(push.headers["content-type"]).toBe("application/json");
    }
  });

  it("sends every line to Logstash as newline-delimited JSON, complete and in order", () => {
    const lines = logstash.lines;
    expect(lines.length).toBeGreaterThan(400);
    expect(lines).toEqual(expectedFrom(lines[0]));
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(logstash.connections()).toBe(1);
  });

  it("ships the request lines with their request ids", () => {
    const ids = new Set(logstash.lines.map((l) => JSON.parse(l).request_id).filter(Boolean));
    for (let i = 0; i < 200; i++) expect(ids.has(`ship-${i}`)).toBe(true);
  });
});
