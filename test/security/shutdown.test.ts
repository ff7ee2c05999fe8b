// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { logFileNames } from "../../src/observability/logger.js";
import { postJson } from "../helpers/http.js";
import { makeTempDir } from "../helpers/server.js";
import { openSse, type SseClient } from "../helpers/sse.js";
import { killChildren, serveChild, startHeldRequest, until } from "./child.js";

// Graceful shutdown under load: open SSE streams, a write whose body is still on its way and reads in
// flight when SIGTERM arrives. (test/api/cli.test.ts covers the plain in-flight read; this adds streams,
// an in-flight write that must persist, the log being complete on disk, and the exit deadline.)

const temp = makeTempDir("i3xd-shutdown-");
afterAll(() => {
  killChildren();
  temp.remove();
});

const SHUTDOWN_DEADLINE_MS = 15_000;

describe("graceful shutdown", () => {
  it("on SIGTERM finishes in-flight requests, ends SSE streams normally, writes the whole log and exits 0", async () => {
    const dataDir = path.join(temp.dir, "data");
    const logFile = path.join(temp.dir, "logs", "i3xd.log");
    const env = { I3XD_DATA_DIR: dataDir, I3XD_DEMO: "true", LOG_FILE: logFile, LOG_LEVEL: "info" };
    const server = await serveChild(env);
    const url = server.url;

    // Three subscribers with a live stream each.
    const streams: SseClient[] = [];
    for (let i = 0; i < 3; i++) {
      const clientId = `shutdown-${i}`;
      const created = await postJson(url, "/v1/subscriptions", { clientId });
      const { subscriptionId } = created.body.result;
      await postJson(url, "/v1/subscriptions/register", {
        clientId,
        subscriptionId,
        elementIds: ["sensor-001"],
      });
      streams.push(await openSse(`${url}/v1/subscriptions/stream`, { clientId, subscriptionId }));
    }
    expect(streams.map((s) => s.status)).toEqual([200, 200, 200]);
    const live = await postJson(
      url,
      "/v1/objects/value",
      { updates: [{ elementId: "sensor-001", value: { value: 11.5, timestamp: "2032-01-01T00:00:00Z" } }] },
      { method: "PUT" },
    );
    expect(live.status).toBe(200);
    for (const s of streams) await s.waitFor(() => s.events.length > 0);

    // In flight when the signal arrives: a write and a handful of history reads, each waiting for its body.
    const write = await startHeldRequest(
      `${url}/v1/objects/value`,
      "PUT",
      JSON.stringify({
        updates: [
          {
            elementId: "sensor-002",
            value: { value: 4.25, quality: "Good", timestamp: "2032-01-01T00:00:01Z" },
          },
        ],
      }),
    );
    const reads = await Promise.all(
      Array.from({ length: 5 }, () =>
        startHeldRequest(
          `${url}/v1/objects/history`,
          "POST",
          JSON.stringify({
            elementIds: ["sensor-001", "sensor-002", "pump-101-flow", "tank-201"],
            startTime: "2000-01-01T00:00:00Z",
            endTime: "2100-01-01T00:00:00Z",
          }),
        ),
      ),
    );

    const signalledAt = Date.now();
    server.child.kill("SIGTERM");
    await until("shutdown to begin", () =>
      readFileSync(path.join(path.dirname(logFile), readdirSync(path.dirname(logFile))[0]), "utf8").includes(
        "Shutting down",
      )
        ? true
        : undefined,
    );
    write.finish();
    for (const r of reads) r.finish();

    const written = await write.answer;
    expect(written.status).toBe(200);
    expect(written.body.success).toBe(true);
    for (const r of await Promise.all(reads.map((r) => r.answer))) {
      expect(r.status).toBe(200);
      expect(r.body.results).toHaveLength(4);
    }
    // Streams end as a normal end of response, not a reset.
    expect(await Promise.all(streams.map((s) => s.ended))).toEqual(["end", "end", "end"]);

    const code = await Promise.race([
      server.exited,
      new Promise<string>((r) => setTimeout(() => r("still running"), SHUTDOWN_DEADLINE_MS)),
    ]);
    expect(code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(SHUTDOWN_DEADLINE_MS);
    await expect(fetch(`${url}/health/live`)).rejects.toThrow();

    // Every line reached the file, complete, ending with the stop line.
    const { dir, pattern } = logFileNames(logFile);
    const text = readdirSync(dir)
      .filter((n) => pattern.test(n))
      .sort((a, b) => Number(pattern.exec(a)?.[1]) - Number(pattern.exec(b)?.[1]))
      .map((n) => readFileSync(path.join(dir, n), "utf8"))
      .join("");
    expect(text.endsWith("\n")).toBe(true);
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const messages = lines.map((l) => l.message);
    expect(messages).toContain("Shutting down");
    expect(lines.at(-1)?.message).toBe("Stopped");
    const completed = lines.filter(
      (l) => l.message === "Request completed" && l.path === "/v1/objects/value",
    );
    expect(completed.some((l) => l.status_code === 200)).toBe(true);
    expect(lines.some((l) => l.level === "ERROR" || l.level === "CRITICAL")).toBe(false);

    // The write answered during shutdown is on disk.
    const again = await serveChild({ ...env, LOG_FILE: path.join(temp.dir, "logs2", "i3xd.log") });
    try {
      const history = await postJson(again.url, "/v1/objects/history", {
        elementIds: ["sensor-002"],
        startTime: "2032-01-01T00:00:00Z",
        endTime: "2032-01-02T00:00:00Z",
      });
      expect(history.body.results[0].result.values.map((v: any) => v.value)).toEqual([4.25]);
    } finally {
      again.child.kill("SIGTERM");
      expect(await again.exited).toBe(0);
    }
  }, 120_000);
});
