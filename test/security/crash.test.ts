// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { postJson } from "../helpers/http.js";
import { makeTempDir } from "../helpers/server.js";
import { killChildren, serveChild } from "./child.js";

// Crash safety: values stream in through the API, the server is killed with SIGKILL in the middle of it,
// and a restart on the same data directory must show every write the server had acknowledged with 200.

const temp = makeTempDir("i3xd-crash-");
afterAll(() => {
  killChildren();
  temp.remove();
});

const ELEMENTS = ["sensor-001", "sensor-002", "pump-101-flow", "pump-101-discharge-pressure"];
const BASE_MS = Date.UTC(2031, 0, 1);
const ACKED_BEFORE_KILL = 600;
const BATCH = 5;

interface Point {
  elementId: string;
  ms: number;
  value: number;
}

describe("crash safety", () => {
  it("keeps every acknowledged write across a SIGKILL in the middle of a write stream", async () => {
    const dataDir = path.join(temp.dir, "data");
    const env = { I3XD_DATA_DIR: dataDir, I3XD_DEMO: "true", LOG_LEVEL: "warn" };
    const first = await serveChild(env);

    const acked: Point[] = [];
    let seq = 0;
    let killed = false;
    let failedAfterKill = 0;
    const writer = async (elementId: string) => {
      while (!killed || failedAfterKill === 0) {
        const points: Point[] = [];
        for (let i = 0; i < BATCH; i++) {
          seq++;
          points.push({ elementId, ms: BASE_MS + seq, value: seq / 10 });
        }
        try {
          const res = await postJson(
            first.url,
            "/v1/objects/value",
            {
              updates: points.map((p) => ({
                elementId: p.elementId,
                value: { value: p.value, quality: "Good", timestamp: new Date(p.ms).toISOString() },
              })),
            },
            { method: "PUT" },
          );
          if (res.status === 200 && res.body.success === true) acked.push(...points);
          else if (!killed) throw new Error(`write refused: ${res.status} ${JSON.stringify(res.body)}`);
        } catch (err) {
          if (!killed) throw err;
          failedAfterKill++;
          return;
        }
        if (!killed && acked.length >= ACKED_BEFORE_KILL) {
          killed = true;
          first.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all(ELEMENTS.map(writer));
    expect(await first.exited).toBeNull();
    expect(first.child.signalCode).toBe("SIGKILL");
    expect(acked.length).toBeGreaterThanOrEqual(ACKED_BEFORE_KILL);

    const second = await serveChild(env);
    try {
      expect((await fetch(`${second.url}/health/ready`)).status).toBe(200);
      const res = await postJson(second.url, "/v1/objects/history", {
        elementIds: ELEMENTS,
        startTime: new Date(BASE_MS).toISOString(),
        endTime: new Date(BASE_MS + 86_400_000).toISOString(),
      });
      expect(res.status).toBe(200);
      const stored = new Map<string, number>();
      for (const item of res.body.results) {
        for (const v of item.result.values)
          stored.set(`${item.elementId}@${Date.parse(v.timestamp)}`, v.value);
      }
      const missing = acked.filter((p) => stored.get(`${p.elementId}@${p.ms}`) !== p.value);
      expect(missing.slice(0, 5), `${missing.length} of ${acked.length} acknowledged points lost`).toEqual(
        [],
      );

      // The newest acknowledged point of each element, or a newer one that was in flight, is current.
      const current = await postJson(second.url, "/v1/objects/value", { elementIds: ELEMENTS });
      for (const item of current.body.results) {
        const newest = Math.max(...acked.filter((p) => p.elementId === item.elementId).map((p) => p.ms));
        expect(Date.parse(item.result.timestamp)).toBeGreaterThanOrEqual(newest);
      }
      const errors = second
        .stdout()
        .split("\n")
        .filter((l) => /"level":"(ERROR|CRITICAL)"/.test(l));
      expect(errors).toEqual([]);
    } finally {
      second.child.kill("SIGTERM");
      expect(await second.exited).toBe(0);
    }

    // The database file itself is intact.
    const db = new Database(path.join(dataDir, "i3xd.sqlite"), { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      db.close();
    }
  }, 120_000);
});
