import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoggedServer, startLoggedServer } from "../helpers/logs.js";

let server: LoggedServer;

beforeAll(async () => {
  server = await startLoggedServer({ LOG_FILE_MAX_SIZE: "2k", LOG_FILE_COUNT: "3" });
});
afterAll(async () => {
  await server?.close();
});

describe("LOG_FILE rotation", () => {
  it("rotates by size and never keeps more than LOG_FILE_COUNT files", async () => {
    const dir = path.dirname(server.logFile);
    let most = 0;
    for (let i = 0; i < 150; i++) {
      const res = await fetch(`${server.url}/v1/objects/list`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": `rotation-${i}` },
        body: JSON.stringify({ elementIds: ["pump-101", "tank-201"] }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      // Everything in the directory counts, not only the files that look like ours.
      most = Math.max(most, readdirSync(dir).length);
    }
    await server.waitForLog(
      "the last request",
      (l) => l.request_id === "rotation-149" && l.message === "Request completed",
    );

    const files = server.logFiles();
    expect(most).toBeLessThanOrEqual(3);
    expect(readdirSync(dir).length).toBeLessThanOrEqual(3);
    expect(files.length).toBeGreaterThanOrEqual(2);
    // Numbers keep growing as files rotate out: far more than three files were written in all.
    const numbers = files.map((f) => Number(/\.(\d+)\.log$/.exec(f)?.[1]));
    expect(Math.max(...numbers)).toBeGreaterThan(10);
    // Each rotated (no longer written) file stopped near the size limit: one worker batch beyond it at most.
    for (const f of files.slice(0, -1)) expect(statSync(f).size).toBeGreaterThanOrEqual(2048);
    for (const f of files.slice(0, -1)) expect(statSync(f).size).toBeLessThan(2048 * 4);
    // The newest lines are all there and whole.
    const lines = server.logLines();
    expect(lines.some((l) => l.request_id === "rotation-149")).toBe(true);
  });
});
