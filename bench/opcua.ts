/**
 * The `opcua` case: an OPC UA server (bench/opcua-source.mjs, a process of its own) bridged by one
 * `kind: opcua` connector into i3xd on SQLite with observability on.
 *   - throughput: the server changes BENCH_OPCUA_VARIABLES variables at BENCH_OPCUA_RATE changes/s for
 *     BENCH_DURATION s; the figure is what i3xd stored per second (connector_messages_total{stored}).
 *   - latency: 100 variables change at 1,000 changes/s; an SSE subscriber of all of them takes the
 *     receive time minus each update's timestamp (the source timestamp the server stamped) as latency.
 * Targets (issue "Connectors, part 3"): ≥ 20,000 notifications/s stored; change → SSE p99 ≤ 100 ms.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type CaseHarness, quantile, subscribeStream } from "./measure.js";

/** The general harness, and the helper processes and settings of bench/run.ts the OPC UA cases use too. */
export interface OpcuaHarness extends CaseHarness {
  duration: number;
  observed: Record<string, string>;
  startNodeHelper(
    script: string,
    env?: Record<string, string>,
  ): Promise<{ child: { pid?: number }; url: string }>;
}

const setting = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const VARIABLES = setting("BENCH_OPCUA_VARIABLES", 5000);
const RATE = setting("BENCH_OPCUA_RATE", 40_000);
const LATENCY_VARIABLES = 100;
const LATENCY_RATE = 1000;
const THROUGHPUT_TARGET = 20_000;
const P99_TARGET_MS = 100;
const ID_PREFIX = "bench:nsu=urn:i3xd:bench;s=Bench.V";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number) => Math.round(n * 100) / 100;

async function storedCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("connector_messages_total{") &&
        l.includes('connector="bench"') &&
        l.includes('outcome="stored"'),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** The connector's `connector_ingest_lag_seconds` buckets (source timestamp → stored): upper bound → count. */
async function ingestLagBuckets(url: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return new Map(
    text
      .split("\n")
      .filter((l) => l.startsWith("connector_ingest_lag_seconds_bucket{") && l.includes('connector="bench"'))
      .map((l) => [Number(/le="([^"]+)"/.exec(l)?.[1] ?? "NaN"), Number(l.split(" ").at(-1))] as const),
  );
}

/** Quantile `q` (ms, a bucket's upper bound) of the lags recorded between two bucket snapshots. */
function lagQuantileMs(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const rows = [...after]
    .map(([le, n]) => [le, n - (before.get(le) ?? 0)] as const)
    .sort((a, b) => a[0] - b[0]);
  const total = rows.at(-1)?.[1] ?? 0;
  const hit = rows.find(([, n]) => n >= q * total);
  return hit ? hit[0] * 1000 : Number.NaN;
}

async function runSource(url: string, rate: number, seconds: number) {
  const res = await fetch(`${url}/run?rate=${rate}&seconds=${seconds}`, { method: "POST" });
  return (await res.json()) as { changes: number; seconds: number; cpuSeconds: number };
}

/** The OPC UA server and an i3xd bridging it, with every variable's first value stored. */
async function startPair(h: OpcuaHarness, variables: number, subscription: string) {
  const pki = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-opcua-"));
  const source = await h.startNodeHelper("opcua-source.mjs", { VARIABLES: String(variables), PKI_DIR: pki });
  const { endpointUrl } = (await (await fetch(`${source.url}/info`)).json()) as { endpointUrl: string };
  const file = path.join(pki, "connectors.yaml");
  fs.writeFileSync(
    file,
    `connectors:\n  - { name: bench, kind: opcua, endpointUrl: "${endpointUrl}", maxNodes: 50000, subscription: ${subscription} }\n`,
  );
  const server = await h.startI3xd("opcua", {
    ...h.observed,
    I3XD_DEMO: "false",
    I3XD_CONNECTORS_FILE: file,
  });
  const deadline = Date.now() + 120_000;
  while ((await storedCount(server.url)) < variables) {
    if (Date.now() > deadline)
      throw new Error("the OPC UA connector did not store the first values in 2 minutes");
    await sleep(200);
  }
  return {
    source,
    server,
    async close() {
      await server.close();
      fs.rmSync(pki, { recursive: true, force: true });
    },
  };
}

async function throughput(h: OpcuaHarness): Promise<void> {
  const pair = await startPair(
    h,
    VARIABLES,
    "{ publishingIntervalMs: 100, samplingIntervalMs: 0, queueSize: 10 }",
  );
  await runSource(pair.source.url, RATE, 2);
  await sleep(500);
  const before = await storedCount(pair.server.url);
  const cpu0 = h.cpuSeconds(pair.server.child.pid);
  const run = await runSource(pair.source.url, RATE, h.duration);
  const cpu = h.cpuSeconds(pair.server.child.pid) - cpu0;
  // What the last publish of the run still brings.
  await sleep(500);
  const stored = (await storedCount(pair.server.url)) - before;
  const perSecond = Math.round(stored / run.seconds);
  h.add(
    h.figureRow(`opcua → stored, ${VARIABLES} variables`, "sqlite", {
      reqPerSec: perSecond,
      cpuUsPerReq: round((cpu * 1e6) / Math.max(1, stored)),
      rssMb: h.rssMb(pair.server.child.pid),
      extra: {
        offered: Math.round(run.changes / run.seconds),
        i3xdCpuCores: round(cpu / run.seconds),
        sourceCpuCores: round(run.cpuSeconds / run.seconds),
      },
      note: "req/s = notifications stored per second; CPU µs per stored notification",
    }),
  );
  h.addTarget({
    target: "OPC UA notifications → stored (SQLite, observability on)",
    want: `≥ ${THROUGHPUT_TARGET}/s`,
    measured: `${perSecond}/s of ${Math.round(run.changes / run.seconds)}/s offered`,
    met: perSecond >= THROUGHPUT_TARGET,
  });
  await pair.close();
}

async function latency(h: OpcuaHarness): Promise<void> {
  const pair = await startPair(
    h,
    LATENCY_VARIABLES,
    "{ publishingIntervalMs: 20, samplingIntervalMs: 0, queueSize: 10 }",
  );
  const url = pair.server.url;
  const latencies: number[] = [];
  let measuring = false;
  const req = await subscribeStream(
    url,
    "bench-opcua",
    Array.from({ length: LATENCY_VARIABLES }, (_, i) => `${ID_PREFIX}${i}`),
    (updates) => {
      if (!measuring) return;
      // The OPC UA source stamps its changes itself, in whole milliseconds of the wall clock.
      const now = Date.now();
      for (const u of updates) latencies.push(now - Date.parse(u.timestamp));
    },
  );
  await runSource(pair.source.url, LATENCY_RATE, 2);
  measuring = true;
  const lagBefore = await ingestLagBuckets(url);
  const run = await runSource(pair.source.url, LATENCY_RATE, h.duration);
  await sleep(500);
  measuring = false;
  const lagAfter = await ingestLagBuckets(url);
  req.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => quantile(latencies, p);
  h.add(
    h.figureRow(`opcua change → SSE, ${LATENCY_RATE} changes/s`, "sqlite", {
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      rssMb: h.rssMb(pair.server.child.pid),
      extra: {
        delivered: latencies.length,
        changes: run.changes,
        storedP50UpToMs: lagQuantileMs(lagBefore, lagAfter, 0.5),
        storedP99UpToMs: lagQuantileMs(lagBefore, lagAfter, 0.99),
      },
      note: "publishing interval 20 ms; latency from the OPC UA source timestamp (ms resolution)",
    }),
  );
  h.addTarget({
    target: "OPC UA change → SSE p99 at 1,000 changes/s",
    want: `≤ ${P99_TARGET_MS} ms`,
    measured: `${q(0.99)} ms (p50 ${q(0.5)} ms)`,
    met: q(0.99) <= P99_TARGET_MS,
  });
  await pair.close();
}

export async function opcuaCases(h: OpcuaHarness): Promise<void> {
  await throughput(h);
  await latency(h);
}
