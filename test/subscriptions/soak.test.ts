import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DEMO_VALUE_IDS } from "../../src/demo/plant-physics.js";
import { postJson } from "../helpers/http.js";
import { makeTempDir } from "../helpers/server.js";
import { openSse, type SseClient } from "../helpers/sse.js";

// A bounded soak: 50 subscriptions watching every demo value while the simulator writes every 10 ms.
// 5 of them stream over SSE, 10 sync and acknowledge twice a second, 35 are never read (their queues sit
// at the bound and overflow the whole time). After a forced GC the server's heap must not have grown
// beyond HEAP_GROWTH_BOUND between the end of the warm-up and the end of the run.

const WARM_UP_MS = 5_000;
const SOAK_MS = 20_000;
const QUEUE_MAX = 2_000;
const HEAP_GROWTH_BOUND = 16 * 1024 * 1024;

interface HeapReport {
  heapUsed: number;
  stats: { subscriptions: number; streams: number; queued: number; dropped: number };
}

function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(m as T);
    };
    const onExit = (code: number | null) =>
      reject(new Error(`soak server exited (${code}) before "${type}"`));
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("subscription soak", () => {
  const data = makeTempDir("i3xd-soak-");
  let child: ChildProcess | undefined;
  const streams: SseClient[] = [];

  afterAll(async () => {
    for (const s of streams) s.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child?.once("exit", r));
      child.send({ type: "stop" });
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    data.remove();
  });

  it("keeps heap bounded with 50 subscriptions, 5 SSE clients and a fast simulator", async () => {
    child = fork(fileURLToPath(new URL("./soak-server.ts", import.meta.url)), [], {
      execArgv: ["--expose-gc", "--import", "tsx"],
      env: {
        ...process.env,
        NODE_ENV: "test",
        I3XD_HOST: "127.0.0.1",
        I3XD_PORT: "0",
        I3XD_DATA_DIR: data.dir,
        I3XD_DEMO: "true",
        I3XD_SIMULATOR_INTERVAL_MS: "10",
        I3XD_SUBSCRIPTION_QUEUE_MAX: String(QUEUE_MAX),
        LOG_LEVEL: "silent",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const { url } = await nextMessage<{ url: string }>(child, "ready");
    const base = `${url}/v1`;
    const heap = async () => {
      const report = nextMessage<HeapReport>(child as ChildProcess, "heap");
      child?.send({ type: "heap" });
      return report;
    };

    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const created = await postJson(base, "/subscriptions", { clientId: `soak-${i % 5}` });
      expect(created.status).toBe(200);
      const id = created.body.result.subscriptionId;
      const reg = await postJson(base, "/subscriptions/register", {
        clientId: `soak-${i % 5}`,
        subscriptionId: id,
        elementIds: DEMO_VALUE_IDS,
      });
      expect(reg.body.success).toBe(true);
      ids.push(id);
    }
    for (let i = 0; i < 5; i++) {
      const stream = await openSse(`${base}/subscriptions/stream`, {
        clientId: `soak-${i % 5}`,
        subscriptionId: ids[i],
      });
      expect(stream.status).toBe(200);
      streams.push(stream);
    }

    let running = true;
    let syncs = 0;
    const pollers = Array.from({ length: 10 }, async (_, k) => {
      const i = 5 + k;
      let last: number | undefined;
      while (running) {
        const res = await postJson(base, "/subscriptions/sync", {
          clientId: `soak-${i % 5}`,
          subscriptionId: ids[i],
          lastSequenceNumber: last,
        });
        expect([200, 206]).toContain(res.status);
        const batches = res.body.result as { sequenceNumber: number }[];
        if (batches.length > 0) last = batches[batches.length - 1].sequenceNumber;
        syncs++;
        await sleep(500);
      }
    });

    await sleep(WARM_UP_MS);
    const before = await heap();
    const eventsBefore = streams.map((s) => s.events.length);
    await sleep(SOAK_MS);
    const after = await heap();
    running = false;
    await Promise.all(pollers);

    const growth = after.heapUsed - before.heapUsed;
    console.info(
      `soak: heap after GC ${(before.heapUsed / 2 ** 20).toFixed(1)} MiB → ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB ` +
        `(${growth >= 0 ? "+" : ""}${(growth / 2 ** 20).toFixed(1)} MiB); queued ${after.stats.queued}, ` +
        `dropped ${after.stats.dropped}, syncs ${syncs}, stream events ${streams.map((s) => s.events.length).join("/")}`,
    );
    expect(growth).toBeLessThan(HEAP_GROWTH_BOUND);
    expect(after.stats).toMatchObject({ subscriptions: 50, streams: 5 });
    expect(after.stats.queued).toBeLessThanOrEqual(50 * QUEUE_MAX);
    // The run did what it claims: the unread queues overflowed and every stream kept receiving.
    expect(after.stats.dropped).toBeGreaterThan(before.stats.dropped);
    for (const [i, s] of streams.entries()) expect(s.events.length).toBeGreaterThan(eventsBefore[i]);
    expect(syncs).toBeGreaterThan(0);
  }, 120_000);
});
