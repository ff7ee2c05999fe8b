/**
 * The `sparkplug` case: a Sparkplug B edge node (in this process, `mqtt` + `sparkplug-payload`) publishes
 * DDATA of 100 Double metrics each, by alias, to the broker; i3xd hosts it with a `kind: sparkplug`
 * connector, observability on. Two figures:
 *   - throughput: DDATA published as fast as i3xd stores them (at most a window of messages ahead of
 *     what `connector_messages_total{outcome="stored"}` shows), metrics stored per second;
 *   - latency: 10 DDATA a second (1,000 metrics/s), publish → SSE receipt of each metric, p50 / p99.
 * Needs the broker at BENCH_MQTT_URL (mqtt://127.0.0.1:1883). BENCH_SPARKPLUG_MESSAGES (3000) sets the
 * throughput run's size, BENCH_SPARKPLUG_SECONDS (20) the latency run's (first, on the fresh server).
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import sparkplugPayload from "sparkplug-payload";
import type { UMetric } from "sparkplug-payload/lib/sparkplugbpayload.js";
import { type CaseHarness, quantile, round, subscribeStream } from "./measure.js";

const BROKER = process.env.BENCH_MQTT_URL ?? "mqtt://127.0.0.1:1883";
const MESSAGES = Number(process.env.BENCH_SPARKPLUG_MESSAGES ?? 3000);
const LATENCY_SECONDS = Number(process.env.BENCH_SPARKPLUG_SECONDS ?? 20);
const METRICS_PER_MESSAGE = 100;
const DEVICES = 10;
/** Messages published ahead of what i3xd reported stored: enough to keep it busy, bounded for the broker. */
const WINDOW = 400;

const TARGET_METRICS_PER_S = 50_000;
const TARGET_P99_MS = 50;

const codec = sparkplugPayload.get("spBv1.0");
if (!codec) throw new Error("sparkplug-payload does not know spBv1.0");
const sparkplug = codec;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `observed`: the environment of "observability on" that every case runs with (bench/run.ts). */
export async function sparkplugCost(h: CaseHarness, observed: Record<string, string>): Promise<void> {
  const group = `bench-${randomUUID().slice(0, 8)}`;
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-spb-")), "connectors.yaml");
  fs.writeFileSync(
    file,
    `connectors:\n  - { name: bench-spb, kind: sparkplug, url: "${BROKER}", groups: [${group}] }\n`,
  );
  const server = await h.startI3xd("sparkplug", { ...observed, I3XD_CONNECTORS_FILE: file });
  const edge = await mqtt.connectAsync(BROKER, { clientId: `bench-edge-${group}`, clean: true });
  let seq = 0;
  const publish = (
    kind: string,
    device: string | undefined,
    metrics: Partial<UMetric>[],
    timestamp: number,
  ) => {
    const topic = `spBv1.0/${group}/${kind}/edge${device ? `/${device}` : ""}`;
    seq = kind === "NBIRTH" ? 0 : (seq + 1) % 256;
    return edge.publishAsync(
      topic,
      Buffer.from(sparkplug.encodePayload({ timestamp, seq, metrics: metrics as UMetric[] })),
      { qos: 0 },
    );
  };
  const alias = (d: number, m: number) => 1000 + d * METRICS_PER_MESSAGE + m;
  try {
    await waitFor(async () => (await storedMessages(server.url)) !== undefined, "the connector's metrics");
    await publish("NBIRTH", undefined, [{ name: "bdSeq", type: "UInt64", value: 0 }], Date.now());
    for (let d = 0; d < DEVICES; d++) {
      const metrics = Array.from({ length: METRICS_PER_MESSAGE }, (_, m) => ({
        name: `Line/Cell/m${m}`,
        alias: alias(d, m),
        type: "Double" as const,
        value: 0,
      }));
      await publish("DBIRTH", `d${d}`, metrics, Date.now());
    }
    const birthed = DEVICES + 1;
    await waitFor(
      async () => ((await storedMessages(server.url)) ?? 0) >= birthed,
      "the births to be stored",
    );

    // Latency at 1,000 metrics/s: device d0's 100 metrics, 10 DDATA a second.
    const ids = Array.from(
      { length: METRICS_PER_MESSAGE },
      (_, m) => `spBv1.0/${group}/edge/d0#Line/Cell/m${m}`,
    );
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const stream = await subscribeStream(server.url, "bench-sparkplug", ids, (updates, now) => {
      for (const u of updates) {
        const t = sentAt.get(u.timestamp);
        if (t !== undefined) latencies.push(now - t);
      }
    });
    await sleep(500);
    const ticks = LATENCY_SECONDS * 10;
    let ts = Date.now() + 60_000;
    for (let i = 0; i < ticks; i++) {
      ts += 1;
      sentAt.set(new Date(ts).toISOString(), performance.now());
      const metrics = Array.from({ length: METRICS_PER_MESSAGE }, (_, m) => ({
        alias: alias(0, m),
        type: "Double" as const,
        value: i + m / 1000,
        timestamp: ts,
      }));
      await publish("DDATA", "d0", metrics, ts);
      await sleep(100);
    }
    await sleep(1000);
    stream.destroy();
    latencies.sort((a, b) => a - b);
    const q = (p: number) => round(quantile(latencies, p));
    const expected = ticks * METRICS_PER_MESSAGE;
    h.add(
      h.figureRow("Sparkplug DDATA publish to SSE, 1,000 metrics/s", "sqlite", {
        p50Ms: q(0.5),
        p99Ms: q(0.99),
        extra: { delivered: latencies.length, expected },
        note: latencies.length < expected ? `${expected - latencies.length} deliveries missing` : undefined,
      }),
    );
    h.addTarget({
      target: "Sparkplug DDATA publish to SSE p99 at 1,000 metrics/s",
      want: `<= ${TARGET_P99_MS} ms`,
      measured: `${q(0.99)} ms`,
      met: q(0.99) <= TARGET_P99_MS,
    });
    // Throughput.
    const base = (await storedMessages(server.url)) ?? 0;
    const started = performance.now();
    const cpuBefore = h.cpuSeconds(server.child.pid);
    let stored = 0;
    let published = 0;
    ts = Date.now() + 120_000;
    while (stored < MESSAGES) {
      while (published < MESSAGES && published - stored < WINDOW) {
        const d = published % DEVICES;
        ts += 1;
        const metrics = Array.from({ length: METRICS_PER_MESSAGE }, (_, m) => ({
          alias: alias(d, m),
          type: "Double" as const,
          value: published + m / 1000,
          timestamp: ts,
        }));
        void publish("DDATA", `d${d}`, metrics, ts);
        published++;
      }
      await sleep(100);
      stored = ((await storedMessages(server.url)) ?? base) - base;
    }
    const seconds = (performance.now() - started) / 1000;
    const metricsPerSec = Math.round((MESSAGES * METRICS_PER_MESSAGE) / seconds);
    // Load-independent: what one core of i3xd stores, whatever else the shared machine runs.
    const metricsPerCpuSec = Math.round(
      (MESSAGES * METRICS_PER_MESSAGE) / (h.cpuSeconds(server.child.pid) - cpuBefore),
    );
    h.add(
      h.figureRow("Sparkplug DDATA (100 metrics) to stored", "sqlite", {
        rssMb: h.rssMb(server.child.pid),
        extra: {
          metricsPerSec,
          metricsPerCpuSec,
          messages: MESSAGES,
          seconds: Math.round(seconds * 100) / 100,
        },
      }),
    );
    h.addTarget({
      target: "Sparkplug DDATA to stored (SQLite), observability on",
      want: `>= ${TARGET_METRICS_PER_S.toLocaleString("en-US")} metrics/s`,
      measured: `${metricsPerSec.toLocaleString("en-US")} metrics/s (${metricsPerCpuSec.toLocaleString("en-US")} per CPU-second of i3xd)`,
      met: metricsPerSec >= TARGET_METRICS_PER_S,
    });
  } finally {
    await edge.endAsync();
    await server.close();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

async function storedMessages(url: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith('connector_messages_total{connector="bench-spb",outcome="stored"}'));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`sparkplug case: timed out waiting for ${what}`);
    await sleep(100);
  }
}
