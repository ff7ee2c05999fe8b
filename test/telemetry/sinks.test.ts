import { once } from "node:events";
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { LogstashSink } from "../../src/observability/sinks/logstash.js";
import { LokiSink } from "../../src/observability/sinks/loki.js";
import { LineQueue } from "../../src/observability/sinks/queue.js";
import {
  closedPort,
  startBlackholeTcp,
  startHangingHttp,
  startLogstashReceiver,
  startLokiReceiver,
  waitFor,
} from "./receivers.js";

/** A log line in the contract's shape. */
function line(i: number, level = "INFO"): string {
  return JSON.stringify({
    level,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, Math.floor(i / 3))).toISOString(),
    logger: "i3xd.test",
    message: `line ${i}`,
    seq: i,
  });
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("line queue", () => {
  it("keeps the newest lines within its capacity and counts what it gave up", () => {
    const q = new LineQueue(3);
    for (let i = 0; i < 5; i++) q.push(String(i));
    expect(q.length).toBe(3);
    expect(q.takeDropped()).toBe(2);
    expect(q.takeDropped()).toBe(0);
    expect(q.take(2)).toEqual(["2", "3"]);
    q.push("5");
    expect(q.take(10)).toEqual(["4", "5"]);
    expect(q.length).toBe(0);
  });
});

describe("Loki sink", () => {
  it("pushes every line once, in order, as JSON streams labelled application and level, with auth and tenant", async () => {
    const loki = await startLokiReceiver();
    cleanups.push(() => loki.close());
    const sink = new LokiSink({
      pushUrl: `${loki.url}/loki/api/v1/push`,
      username: "tenant-user",
      password: "s3cret",
      tenant: "team-a",
      labels: { application: "i3xd" },
      bufferMax: 10_000,
      batchMax: 100,
      batchIntervalMs: 50,
    });
    cleanups.push(() => sink.close(Date.now() + 1000));
    for (let i = 0; i < 450; i++) sink.push(line(i, i % 10 === 0 ? "ERROR" : "INFO"));
    await waitFor("all lines at Loki", () => loki.entries().length === 450);

    const entries = loki.entries();
    expect(entries.map((e) => JSON.parse(e.line).seq)).toEqual([...Array(450).keys()]);
    for (const e of entries) {
      expect(e.labels).toEqual({ application: "i3xd", level: JSON.parse(e.line).level });
    }
    expect(new Set(entries.map((e) => e.ts)).size).toBe(450);
    // Batched: 450 lines at 100 per push.
    expect(loki.pushes().length).toBeGreaterThanOrEqual(5);
    expect(loki.pushes().length).toBeLessThan(50);
    const headers = loki.pushes()[0].headers;
    expect(headers.authorization).toBe(`Basic ${Buffer.from("tenant-user:s3cret").toString("base64")}`);
    expect(headers["x-scope-orgid"]).toBe("team-a");
    expect(headers["content-type"]).toBe("application/json");
    expect(sink.takeDropped()).toBe(0);
  });

  it("holds at most its bound while Loki refuses connections, counts the rest, and catches up when it is back", async () => {
    const port = await closedPort();
    const sink = new LokiSink({
      pushUrl: `http://127.0.0.1:${port}/loki/api/v1/push`,
      labels: { application: "i3xd" },
      bufferMax: 200,
      batchMax: 50,
      batchIntervalMs: 20,
    });
    cleanups.push(() => sink.close(Date.now() + 500));
    for (let i = 0; i < 1000; i++) sink.push(line(i));
    expect(sink.buffered()).toBeLessThanOrEqual(200 + 50);
    let dropped = sink.takeDropped();
    expect(dropped).toBeGreaterThanOrEqual(1000 - 250);

    // Loki comes up on that port: the newest lines still buffered are delivered.
    const received: string[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const doc = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const s of doc.streams) for (const [, l] of s.values) received.push(l);
        res.writeHead(204).end();
      });
    });
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    await waitFor("buffered lines delivered", () => sink.buffered() === 0, 40_000);
    dropped += sink.takeDropped();
    expect(received.length + dropped).toBe(1000);
    const seqs = received.map((l) => JSON.parse(l).seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs.at(-1)).toBe(999);
  }, 60_000);

  it("stays bounded when Loki accepts requests and never answers", async () => {
    const hanging = await startHangingHttp();
    cleanups.push(() => hanging.close());
    const sink = new LokiSink({
      pushUrl: `${hanging.url}/loki/api/v1/push`,
      labels: { application: "i3xd" },
      bufferMax: 500,
      batchMax: 100,
      batchIntervalMs: 10,
      requestTimeoutMs: 60_000,
    });
    for (let i = 0; i < 20_000; i++) sink.push(line(i));
    await waitFor("a push in flight", () => hanging.requestCount() > 0);
    for (let i = 0; i < 20_000; i++) sink.push(line(i));
    expect(sink.buffered()).toBeLessThanOrEqual(600);
    expect(sink.takeDropped()).toBeGreaterThanOrEqual(40_000 - 600);
    // Closing gives up on the hung request at its deadline and counts what was left.
    await sink.close(Date.now() + 200);
    expect(sink.buffered()).toBe(0);
    expect(sink.takeDropped()).toBeGreaterThan(0);
  });

  it("drops (and counts) a batch Loki rejects as invalid instead of retrying it forever", async () => {
    const loki = await startLokiReceiver(400);
    cleanups.push(() => loki.close());
    const sink = new LokiSink({
      pushUrl: `${loki.url}/loki/api/v1/push`,
      labels: { application: "i3xd" },
      bufferMax: 100,
      batchMax: 10,
      batchIntervalMs: 10,
    });
    cleanups.push(() => sink.close(Date.now() + 200));
    for (let i = 0; i < 10; i++) sink.push(line(i));
    await waitFor("the rejected batch counted", () => sink.takeDropped() === 10 || undefined);
    expect(loki.pushes().length).toBe(1);
  });
});

describe("Logstash sink", () => {
  it("sends newline-delimited JSON in order over one connection", async () => {
    const logstash = await startLogstashReceiver();
    cleanups.push(() => logstash.close());
    const sink = new LogstashSink({ host: logstash.host, port: logstash.port, bufferMax: 10_000 });
    cleanups.push(() => sink.close(Date.now() + 1000));
    for (let i = 0; i < 3000; i++) sink.push(line(i));
    await waitFor("all lines at Logstash", () => logstash.lines.length === 3000);
    expect(logstash.lines.map((l) => JSON.parse(l).seq)).toEqual([...Array(3000).keys()]);
    expect(logstash.connections()).toBe(1);
  });

  it("reconnects with backoff when Logstash comes (back) up, keeping what it buffered meanwhile", async () => {
    const port = await closedPort();
    const sink = new LogstashSink({ host: "127.0.0.1", port, bufferMax: 1000 });
    cleanups.push(() => sink.close(Date.now() + 1000));
    for (let i = 0; i < 100; i++) sink.push(line(i));
    await new Promise((r) => setTimeout(r, 300));
    const lines: string[] = [];
    const net = await import("node:net");
    const sockets: import("node:net").Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      let carry = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        const parts = (carry + chunk).split("\n");
        carry = parts.pop() ?? "";
        lines.push(...parts.filter((p) => p !== ""));
      });
    });
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    await waitFor("buffered lines after reconnect", () => lines.length === 100, 40_000);
    for (let i = 100; i < 200; i++) sink.push(line(i));
    await waitFor("later lines", () => lines.length === 200);
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([...Array(200).keys()]);
    expect(sink.takeDropped()).toBe(0);
  }, 60_000);

  it("stays bounded when Logstash accepts the connection and never reads", async () => {
    const hole = await startBlackholeTcp();
    cleanups.push(() => hole.close());
    const sink = new LogstashSink({
      host: hole.host,
      port: hole.port,
      bufferMax: 1000,
      socketHighWater: 64 * 1024,
    });
    const big = `${line(0).slice(0, -1)},"pad":"${"x".repeat(900)}"}`;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 1000; i++) sink.push(big);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor("connected", () => hole.connections() > 0);
    // 40 MB offered; the kernel takes a few MB, the socket holds 64 KiB, the queue 1000 lines.
    expect(sink.buffered()).toBeLessThanOrEqual(1000 + 600);
    expect(sink.takeDropped()).toBeGreaterThan(30_000);
    await sink.close(Date.now() + 200);
  });
});
