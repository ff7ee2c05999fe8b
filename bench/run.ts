/**
 * `npm run bench`: i3xd's server CPU per request, and its throughput against the floor (a bare Fastify
 * route answering a fixed body, bench/floor.mjs) measured side by side in the same run. Prints one table
 * plus the targets, and writes both as JSON to bench/results/latest.json.
 *
 * Knobs (environment; see bench/README.md):
 *   BENCH_DURATION     seconds of measured load per case (10)
 *   BENCH_WARMUP       seconds of unmeasured load before each case (2)
 *   BENCH_CONNECTIONS  autocannon connections (50)
 *   BENCH_ROUNDS       a throughput case and the floor alternate in this many slices (2), so that the
 *                      ratio compares numbers taken side by side even when the machine is busy
 *   BENCH_CASES        comma list of: objects,list,value,composition,write,ingest,history,sse,observability,
 *                      floor,ceiling,telemetry (shipping: its none and all-four pair only),sparkplug,
 *                      opcua,mqtt
 *   BENCH_STORES       comma list of sqlite,postgres (sqlite)
 *   BENCH_BASELINE     a built checkout of another commit: its server runs the objects, list and value
 *                      cases in the same alternating slices (rows marked "baseline")
 *   BENCH_PG_URL       admin URL for the PostgreSQL column (postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_SSE_SUBSCRIBERS (100), BENCH_SSE_WRITES (300), BENCH_INGEST_WRITERS (4)
 *   BENCH_IDLE_SECONDS how long the fresh server idles before its idle RSS is taken (45)
 *   BENCH_CPU_PROF     a directory: every i3xd process runs with `node --cpu-prof` and writes its profile there
 *   BENCH_NODE_ARGS    extra node flags for every i3xd process (experiments, e.g. V8 heap settings)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { openStream, quantile, round } from "./measure.js";
import { mqttConnectorCost } from "./mqtt.js";
import { opcuaCases } from "./opcua.js";
import { sparkplugCost } from "./sparkplug.js";
import { telemetryCost } from "./telemetry.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const num = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number`);
  return v;
};
const DURATION = num("BENCH_DURATION", 10);
const WARMUP = num("BENCH_WARMUP", 2);
const CONNECTIONS = num("BENCH_CONNECTIONS", 50);
const ROUNDS = Math.max(1, Math.round(num("BENCH_ROUNDS", 2)));
const SSE_SUBSCRIBERS = num("BENCH_SSE_SUBSCRIBERS", 100);
const SSE_WRITES = num("BENCH_SSE_WRITES", 300);
const INGEST_WRITERS = Math.max(1, num("BENCH_INGEST_WRITERS", 4));
const IDLE_SECONDS = Math.max(3, num("BENCH_IDLE_SECONDS", 45));
const STORES = (process.env.BENCH_STORES ?? "sqlite").split(",").map((s) => s.trim());
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const ONLY = process.env.BENCH_CASES ? new Set(process.env.BENCH_CASES.split(",")) : undefined;
const CPU_PROF = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
/** Another built checkout (e.g. a `git worktree` of the previous commit) measured side by side. */
const BASELINE = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE) : undefined;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * What every i3xd under test gets besides its own settings. Authentication is off by the server's own
 * rule (loopback address, development, no API keys in the fresh data directory); the rate limit is off on
 * loopback by default and is switched off explicitly so a changed default can never throttle the run.
 */
const BASE_ENV = {
  I3XD_HOST: "127.0.0.1",
  I3XD_DEMO: "true",
  I3XD_RATE_LIMIT_MAX: "0",
  I3XD_SIMULATOR_INTERVAL_MS: "1000",
};

interface Row {
  case: string;
  store: string;
  reqPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Floor req/s measured side by side with this case (alternating slices). */
  floorRps: number | null;
  /** req/s against the floor's. */
  ratio: number | null;
  /** Server CPU time (user + system, all threads) per request, microseconds. */
  cpuUsPerReq: number | null;
  rssMb: number | null;
  note?: string;
  extra?: Record<string, number>;
}

interface Target {
  target: string;
  want: string;
  measured: string;
  met: boolean | null;
}

const rows: Row[] = [];
const targets: Target[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

// ---------------------------------------------------------------------------------------------------------
// Processes

async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  srv.close();
  await once(srv, "close");
  return port;
}

interface Proc {
  child: ChildProcess;
  url: string;
}

/** A helper script of bench/; with `env`, that and nothing else from the caller's environment. */
async function startNodeHelper(script: string, env?: Record<string, string>): Promise<Proc> {
  const child = spawn(process.execPath, [path.join(ROOT, "bench", script)], {
    stdio: ["ignore", "pipe", "inherit"],
    env:
      env === undefined ? undefined : { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  const { port } = JSON.parse(line.toString().split("\n")[0]) as { port: number };
  cleanups.push(() => stop(child));
  return { child, url: `http://127.0.0.1:${port}` };
}

interface Server extends Proc {
  label: string;
  dataDir: string;
  close(): Promise<void>;
}

async function startI3xd(label: string, env: Record<string, string>, root = ROOT): Promise<Server> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `i3xd-bench-${label}-`));
  const nodeArgs: string[] = [...NODE_ARGS];
  if (CPU_PROF) {
    const dir = path.join(CPU_PROF, label);
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, "dist", "cli.js"), "serve"], {
    // Only what is set here: nothing from the caller's environment (keys, OTEL_*, NODE_ENV) leaks in.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      ...BASE_ENV,
      I3XD_PORT: String(port),
      I3XD_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`i3xd (${label}) exited during start-up: ${stderr}`);
    try {
      const res = await fetch(`${url}/health/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`i3xd (${label}) did not become ready: ${stderr}`);
    await sleep(100);
  }
  // The run relies on both: say so if the server disagrees.
  const probe = await fetch(`${url}/v1/objects?root=true`);
  if (probe.status === 401)
    throw new Error(`i3xd (${label}) requires authentication; the bench expects it off`);
  let closed = false;
  const server: Server = {
    label,
    child,
    url,
    dataDir,
    async close() {
      if (closed) return;
      closed = true;
      await stop(child);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  cleanups.push(() => server.close());
  return server;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await once(child, "exit");
  clearTimeout(timer);
}

/** Resident set size of a process in MiB, from the kernel's view (what an operator's monitor shows). */
function rssMb(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system, every thread) a process has used so far. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * RSS of a freshly started, idle server: 3 s after ready, and the lowest value while it idles on. Loading
 * the demo plant (a day of seeded history) leaves garbage that V8's memory reducer collects only after
 * some 30 s without load; the settled figure is what the process holds while idle.
 */
async function idleRss(server: Server): Promise<{ early: number | null; settled: number | null }> {
  await sleep(3000);
  const early = rssMb(server.child.pid);
  let settled = early;
  const until = Date.now() + Math.max(0, IDLE_SECONDS - 3) * 1000;
  while (Date.now() < until) {
    await sleep(1000);
    const now = rssMb(server.child.pid);
    if (now !== null && (settled === null || now < settled)) settled = now;
  }
  return { early, settled };
}

// ---------------------------------------------------------------------------------------------------------
// Load

interface LoadTarget {
  url: string;
  method: "GET" | "POST" | "PUT";
  body?: string;
  connections?: number;
}

interface LoadResult {
  requests: number;
  seconds: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  /** Server CPU seconds used while this load ran (NaN when unknown). */
  cpu: number;
}

function request(url: string, method: LoadTarget["method"], body: unknown): LoadTarget {
  return { url, method, body: body === undefined ? undefined : JSON.stringify(body) };
}

async function cannon(t: LoadTarget, seconds: number, pid?: number): Promise<LoadResult> {
  const cpu0 = cpuSeconds(pid);
  const r = await autocannon({
    url: t.url,
    method: t.method,
    connections: t.connections ?? CONNECTIONS,
    headers: { "content-type": "application/json", accept: "application/json" },
    body: t.body,
    duration: seconds,
  });
  const requests = r.requests.total;
  return {
    requests,
    seconds: r.duration,
    reqPerSec: Math.round(requests / r.duration),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    cpu: cpuSeconds(pid) - cpu0,
  };
}

/** Several slices of one target merged: totals add up, latency percentiles are request-weighted. */
function merge(parts: LoadResult[]): LoadResult {
  const requests = parts.reduce((n, p) => n + p.requests, 0);
  const seconds = parts.reduce((n, p) => n + p.seconds, 0);
  const weighted = (f: (p: LoadResult) => number) =>
    round(parts.reduce((n, p) => n + f(p) * p.requests, 0) / Math.max(1, requests));
  return {
    requests,
    seconds,
    reqPerSec: Math.round(requests / seconds),
    p50Ms: weighted((p) => p.p50Ms),
    p99Ms: Math.max(...parts.map((p) => p.p99Ms)),
    non2xx: parts.reduce((n, p) => n + p.non2xx, 0),
    errors: parts.reduce((n, p) => n + p.errors, 0),
    cpu: parts.reduce((n, p) => n + p.cpu, 0),
  };
}

/** The floor: a bare Fastify route (bench/floor.mjs) answering a fixed 10-id value response. */
let floor: Proc;
const floorRuns: LoadResult[] = [];
/** What the floor is always asked: the 10-id value request it answers with its fixed body. */
const FLOOR_BODY = { elementIds: Array.from({ length: 10 }, (_, i) => `pump-101-measurement-${i}`) };

/**
 * Measures targets in alternating slices (floor, a, b, floor, a, b, …) after one warm-up of each, so
 * every ratio compares numbers taken side by side on a machine whose other load changes over time.
 */
async function alternate(
  targets: Array<{ target: LoadTarget; pid?: number }>,
): Promise<{ floor: LoadResult; results: LoadResult[] }> {
  const f = request(`${floor.url}/v1/objects/value`, "POST", FLOOR_BODY);
  if (WARMUP > 0) for (const t of [{ target: f }, ...targets]) await cannon(t.target, WARMUP);
  const slice = Math.max(1, Math.round(DURATION / ROUNDS));
  const fParts: LoadResult[] = [];
  const parts: LoadResult[][] = targets.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    fParts.push(await cannon(f, slice, floor.child.pid));
    for (let i = 0; i < targets.length; i++)
      parts[i].push(await cannon(targets[i].target, slice, targets[i].pid));
  }
  const fm = merge(fParts);
  floorRuns.push(fm);
  return { floor: fm, results: parts.map(merge) };
}

function cpuPerReq(r: LoadResult): number | null {
  return Number.isFinite(r.cpu) && r.requests > 0 ? Math.round((r.cpu / r.requests) * 1e6) : null;
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, {
    ...init,
    headers: { "content-type": "application/json", accept: "application/json", ...(init?.headers ?? {}) },
  });
  const body = (await res.json()) as T;
  if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// ---------------------------------------------------------------------------------------------------------
// The demo plant, as a client discovers it

interface Leaf {
  elementId: string;
  /** A value the element's type accepts, varying with `i` where the type is numeric. */
  valueAt(i: number): unknown;
}

interface Plant {
  /** Ten distinct elements that carry values, scalar ones first. */
  leaves: Leaf[];
  ids: string[];
  composition: string;
}

async function discover(url: string): Promise<Plant> {
  const types = await json<{ result: Array<{ elementId: string; schema: Record<string, unknown> }> }>(
    `${url}/v1/objecttypes`,
  );
  const schemaOf = new Map(types.result.map((t) => [t.elementId, t.schema]));
  const objects = await json<{
    result: Array<{ elementId: string; typeElementId: string; isComposition: boolean }>;
  }>(`${url}/v1/objects`);
  const values = await json<{
    results: Array<{ elementId: string; result?: { value: unknown; quality: string } }>;
  }>(`${url}/v1/objects/value`, {
    method: "POST",
    body: JSON.stringify({ elementIds: objects.result.map((o) => o.elementId) }),
  });
  const current = new Map<string, unknown>();
  for (const r of values.results) {
    if (r.result && r.result.quality === "Good" && r.result.value !== null)
      current.set(r.elementId, r.result.value);
  }
  const rank = (type: unknown) =>
    type === "number" || type === "integer" ? 0 : type === "boolean" || type === "string" ? 1 : 2;
  const candidates = objects.result
    .filter((o) => current.has(o.elementId))
    .map((o) => ({ o, schema: schemaOf.get(o.typeElementId) ?? {} }))
    .sort((a, b) => rank(a.schema.type) - rank(b.schema.type));
  if (candidates.length < 10) {
    throw new Error(
      `the demo plant has ${candidates.length} elements with values; the cases need 10 distinct`,
    );
  }
  const leaves = candidates.slice(0, 10).map(({ o, schema }): Leaf => {
    const base = current.get(o.elementId);
    if ((schema.type === "number" || schema.type === "integer") && typeof base === "number") {
      const min = typeof schema.minimum === "number" ? schema.minimum : Number.NEGATIVE_INFINITY;
      const max = typeof schema.maximum === "number" ? schema.maximum : Number.POSITIVE_INFINITY;
      const amplitude = Math.max(1, Math.abs(base) * 0.05);
      return {
        elementId: o.elementId,
        valueAt(i) {
          const v = Math.min(max, Math.max(min, base + amplitude * Math.sin(i / 60)));
          return schema.type === "integer" ? Math.round(v) : Math.round(v * 1000) / 1000;
        },
      };
    }
    return { elementId: o.elementId, valueAt: () => base };
  });
  const composition =
    objects.result.find((o) => o.elementId === "pump-101" && o.isComposition)?.elementId ??
    objects.result.find((o) => o.isComposition)?.elementId;
  if (!composition) throw new Error("the demo plant has no composition object");
  return { leaves, ids: leaves.map((l) => l.elementId), composition };
}

// ---------------------------------------------------------------------------------------------------------
// Cases

function wanted(name: string): boolean {
  return !ONLY || ONLY.has(name);
}

function log(row: Row): void {
  const extra = row.extra ? ` ${JSON.stringify(row.extra)}` : "";
  const note = row.note ? ` (${row.note})` : "";
  console.error(
    `  ${row.case} [${row.store}]: ${row.reqPerSec ?? "-"} req/s, p50 ${row.p50Ms ?? "-"} ms, p99 ${row.p99Ms ?? "-"} ms, ` +
      `${row.ratio ?? "-"} x floor, cpu ${row.cpuUsPerReq ?? "-"} µs/req${extra}${note}`,
  );
}

/** A row that reports figures other than a load run's: every column not given stays empty. */
function figureRow(name: string, store: string, figures: Partial<Row>): Row {
  return {
    case: name,
    store,
    reqPerSec: null,
    p50Ms: null,
    p99Ms: null,
    floorRps: null,
    ratio: null,
    cpuUsPerReq: null,
    rssMb: null,
    ...figures,
  };
}

function add(row: Row): Row {
  rows.push(row);
  log(row);
  return row;
}

function checkLoad(r: LoadResult): string | undefined {
  if (r.non2xx > 0 || r.errors > 0) return `${r.non2xx} non-2xx, ${r.errors} errors`;
  return undefined;
}

function throughputRow(name: string, store: string, r: LoadResult, f: LoadResult, pid?: number): Row {
  return {
    case: name,
    store,
    reqPerSec: r.reqPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    floorRps: f.reqPerSec,
    ratio: round(r.reqPerSec / f.reqPerSec),
    cpuUsPerReq: cpuPerReq(r),
    rssMb: rssMb(pid),
    note: checkLoad(r),
  };
}

const valueCase = "POST /v1/objects/value (10 ids)";
const listCase = "POST /v1/objects/list (10 ids)";
const objectsCase = "GET /v1/objects";
const historyCase = "POST /v1/objects/history (10 ids x 1 h at 1 Hz)";
const ingestCase = "PUT /v1/objects/history (1,000-point batches)";
const sseCase = "SSE fan-out (write to receipt)";

async function readWriteCases(server: Server, store: string, plant: Plant, baseline?: Server): Promise<void> {
  const pid = server.child.pid;
  const ids = plant.ids;
  const throughput = async (name: string, key: string, target: LoadTarget) => {
    if (!wanted(key)) return;
    // The read cases also run against the baseline checkout, in the same alternating slices.
    const compared = baseline !== undefined && ["objects", "list", "value"].includes(key);
    const againstBaseline = compared
      ? { ...target, url: target.url.replace(server.url, baseline.url) }
      : target;
    const both = [
      { target, pid },
      ...(compared ? [{ target: againstBaseline, pid: baseline.child.pid }] : []),
    ];
    const { floor: f, results } = await alternate(both);
    add(throughputRow(name, store, results[0], f, pid));
    if (compared) add(throughputRow(`${name}, baseline`, store, results[1], f, baseline.child.pid));
  };
  const u = server.url;
  await throughput(objectsCase, "objects", request(`${u}/v1/objects`, "GET", undefined));
  await throughput(listCase, "list", request(`${u}/v1/objects/list`, "POST", { elementIds: ids }));
  await throughput(valueCase, "value", request(`${u}/v1/objects/value`, "POST", { elementIds: ids }));
  await throughput(
    `POST /v1/objects/value (${plant.composition}, maxDepth 0)`,
    "composition",
    request(`${u}/v1/objects/value`, "POST", { elementIds: [plant.composition], maxDepth: 0 }),
  );
  await throughput(
    "PUT /v1/objects/value (10 ids)",
    "write",
    request(`${u}/v1/objects/value`, "PUT", {
      updates: plant.leaves.map((l, i) => ({
        elementId: l.elementId,
        value: { value: l.valueAt(i), quality: "Good" },
      })),
    }),
  );
  if (wanted("ingest")) {
    const res = await ingest(server, plant);
    add({
      case: ingestCase,
      store,
      reqPerSec: res.reqPerSec,
      p50Ms: res.p50Ms,
      p99Ms: res.p99Ms,
      floorRps: null,
      ratio: null,
      cpuUsPerReq: res.cpuUsPerReq,
      rssMb: rssMb(pid),
      extra: { pointsPerSec: res.pointsPerSec, writers: INGEST_WRITERS },
      note: res.note,
    });
  }
  if (wanted("history")) {
    const res = await historyRead(server, plant);
    add({
      case: historyCase,
      store,
      reqPerSec: res.load.reqPerSec,
      p50Ms: res.load.p50Ms,
      p99Ms: res.load.p99Ms,
      floorRps: null,
      ratio: null,
      cpuUsPerReq: cpuPerReq(res.load),
      rssMb: rssMb(pid),
      extra: { points: res.points, responseBytes: res.bytes, connections: 1 },
      note: res.note,
    });
  }
}

/** Sustained history ingest: several writers, each sending 1,000-point batches with fresh timestamps. */
async function ingest(server: Server, plant: Plant) {
  const batch = 1000;
  const perElement = batch / plant.leaves.length;
  // Far in the past and never repeated, so every batch creates new records.
  let nextSecond = Date.UTC(2019, 0, 1) / 1000;
  const latencies: number[] = [];
  let failedBatches = 0;
  let failedItems = 0;
  const warmEnd = Date.now() + WARMUP * 1000;
  const stopAt = warmEnd + DURATION * 1000;
  let measuring = false;
  let measuredStart = 0;
  let cpu0 = 0;
  let okPoints = 0;
  let batches = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: INGEST_WRITERS });
  async function writer() {
    while (Date.now() < stopAt) {
      if (!measuring && Date.now() >= warmEnd) {
        // From here on every batch that starts is counted, and only those.
        measuring = true;
        measuredStart = performance.now();
        cpu0 = cpuSeconds(server.child.pid);
      }
      const counted = measuring;
      const start = nextSecond;
      nextSecond += perElement;
      // The client shares the machine with the server: the body is written as text, not built as
      // objects and stringified, so the load generator takes as little CPU from the server as it can.
      const items: string[] = [];
      for (const leaf of plant.leaves) {
        const id = JSON.stringify(leaf.elementId);
        for (let s = 0; s < perElement; s++) {
          const value = JSON.stringify(leaf.valueAt(start + s));
          items.push(
            `{"elementId":${id},"value":{"value":${value},"quality":"Good","timestamp":"${isoSecond(start + s)}"}}`,
          );
        }
      }
      const t0 = performance.now();
      const res = await send(
        `${server.url}/v1/objects/history`,
        "PUT",
        `{"updates":[${items.join(",")}]}`,
        agent,
      );
      const dt = performance.now() - t0;
      const body = res.body as { success?: boolean; results?: Array<{ success: boolean }> };
      const ok = res.status === 200 ? (body.results?.filter((r) => r.success).length ?? 0) : 0;
      if (res.status !== 200) failedBatches++;
      else failedItems += items.length - ok;
      if (counted) {
        okPoints += ok;
        batches++;
        latencies.push(dt);
      }
    }
  }
  await Promise.all(Array.from({ length: INGEST_WRITERS }, writer));
  const elapsed = (performance.now() - measuredStart) / 1000;
  const cpu = cpuSeconds(server.child.pid) - cpu0;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const problems = [
    failedBatches > 0 ? `${failedBatches} failed batches` : "",
    failedItems > 0 ? `${failedItems} rejected points` : "",
  ].filter(Boolean);
  return {
    reqPerSec: Math.round(batches / elapsed),
    p50Ms: round(quantile(latencies, 0.5)),
    p99Ms: round(quantile(latencies, 0.99)),
    pointsPerSec: Math.round(okPoints / elapsed),
    cpuUsPerReq: batches > 0 && Number.isFinite(cpu) ? Math.round((cpu / batches) * 1e6) : null,
    note: problems.length > 0 ? problems.join(", ") : undefined,
  };
}

let isoMinute = Number.NaN;
let isoPrefix = "";

/** `new Date(sec * 1000).toISOString()` for whole seconds, at a fraction of its cost. */
function isoSecond(sec: number): string {
  const minute = Math.floor(sec / 60);
  if (minute !== isoMinute) {
    isoMinute = minute;
    isoPrefix = new Date(minute * 60_000).toISOString().slice(0, 17);
  }
  const s = sec - minute * 60;
  return `${isoPrefix}${s < 10 ? "0" : ""}${s}.000Z`;
}

function send(
  url: string,
  method: string,
  body: unknown,
  agent: http.Agent,
): Promise<{ status: number; body: unknown; bytes: number }> {
  const payload = typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: {
          "content-type": "application/json",
          accept: "application/json",
          "content-length": Buffer.byteLength(payload),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, bytes: Buffer.byteLength(text) });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Writes one hour at 1 Hz for each of 10 elements far in the past, then reads that hour back. */
async function historyRead(server: Server, plant: Plant) {
  const startMs = Date.UTC(2018, 5, 1);
  const agent = new http.Agent({ keepAlive: true });
  for (const leaf of plant.leaves) {
    for (let offset = 0; offset < 3600; offset += 1000) {
      const updates = [];
      for (let s = offset; s < Math.min(offset + 1000, 3600); s++) {
        updates.push({
          elementId: leaf.elementId,
          value: {
            value: leaf.valueAt(s),
            quality: "Good",
            timestamp: new Date(startMs + s * 1000).toISOString(),
          },
        });
      }
      const res = await send(`${server.url}/v1/objects/history`, "PUT", { updates }, agent);
      if (res.status !== 200 || !(res.body as { success: boolean }).success)
        throw new Error(
          `history setup write failed: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`,
        );
    }
  }
  const body = {
    elementIds: plant.ids,
    startTime: new Date(startMs).toISOString(),
    endTime: new Date(startMs + 3599_000).toISOString(),
  };
  const check = await send(`${server.url}/v1/objects/history`, "POST", body, agent);
  agent.destroy();
  const results = (check.body as { results: Array<{ result?: { values: unknown[] } }> }).results;
  const points = results.reduce((n, r) => n + (r.result?.values.length ?? 0), 0);
  // One connection: the target is the latency of one read, not of a queue of 50 multi-megabyte reads.
  const target = { ...request(`${server.url}/v1/objects/history`, "POST", body), connections: 1 };
  if (WARMUP > 0) await cannon(target, WARMUP);
  const r = await cannon(target, DURATION, server.child.pid);
  return {
    load: r,
    points,
    bytes: check.bytes,
    note: points !== 36_000 ? `read ${points} points, expected 36000` : checkLoad(r),
  };
}

/** Subscribers with an SSE stream each; one element written 50 times a second; write-to-receipt latency. */
async function sseFanOut(server: Server, plant: Plant): Promise<Row> {
  const url = server.url;
  const leaf = plant.leaves[0];
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const streams: http.ClientRequest[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: SSE_SUBSCRIBERS + 10 });
  for (let i = 0; i < SSE_SUBSCRIBERS; i++) {
    const clientId = `bench-client-${i}`;
    const sub = await json<{ result: { subscriptionId: string } }>(`${url}/v1/subscriptions`, {
      method: "POST",
      body: JSON.stringify({ clientId, displayName: `bench ${i}` }),
    });
    const subscriptionId = sub.result.subscriptionId;
    await json(`${url}/v1/subscriptions/register`, {
      method: "POST",
      body: JSON.stringify({ clientId, subscriptionId, elementIds: [leaf.elementId] }),
    });
    const req = await openStream(
      url,
      clientId,
      subscriptionId,
      (updates, now) => {
        for (const u of updates) {
          const t = sentAt.get(u.timestamp);
          if (t !== undefined) latencies.push(now - t);
        }
      },
      agent,
    );
    streams.push(req);
  }
  await sleep(500);
  const writeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // Unique timestamps (whole milliseconds a second ahead of the simulator) identify our writes.
  let ms = Date.now() + 1000;
  let failed = 0;
  for (let i = 0; i < SSE_WRITES; i++) {
    ms += 1;
    const timestamp = new Date(ms).toISOString();
    sentAt.set(timestamp, performance.now());
    const res = await send(
      `${url}/v1/objects/value`,
      "PUT",
      {
        updates: [
          { elementId: leaf.elementId, value: { value: leaf.valueAt(i), quality: "Good", timestamp } },
        ],
      },
      writeAgent,
    );
    if (res.status !== 200) failed++;
    await sleep(20);
  }
  await sleep(1000);
  for (const s of streams) s.destroy();
  agent.destroy();
  writeAgent.destroy();
  latencies.sort((a, b) => a - b);
  const expected = SSE_WRITES * SSE_SUBSCRIBERS;
  const problems = [
    latencies.length < expected ? `${expected - latencies.length} deliveries missing` : "",
    failed > 0 ? `${failed} failed writes` : "",
  ].filter(Boolean);
  return figureRow(
    `${sseCase}, ${SSE_SUBSCRIBERS} subscribers`,
    server.label.startsWith("postgres") ? "postgres" : "sqlite",
    {
      p50Ms: round(quantile(latencies, 0.5)),
      p99Ms: round(quantile(latencies, 0.99)),
      rssMb: rssMb(server.child.pid),
      extra: { delivered: latencies.length, expected },
      note: problems.length > 0 ? problems.join(", ") : undefined,
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL column

async function freshPgDatabase(): Promise<string> {
  const { default: pg } = await import("pg");
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  const name = `i3xd_bench_${process.pid}_${Date.now()}`;
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

// ---------------------------------------------------------------------------------------------------------
// Observability on versus off

/** Traces to the loopback OTLP receiver at `url`, 10 % of the root spans sampled, exported every second. */
function tracedAtTenPercent(url: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.1",
    OTEL_BSP_SCHEDULE_DELAY: "1000",
  };
}

async function observabilityCost(logDir: string): Promise<void> {
  const sink = await startNodeHelper("otlp-sink.mjs");
  // On: request logging at INFO to a rotated file, metrics, and traces to a loopback OTLP receiver with
  // 10% of the root spans sampled. Off: no log lines, no metrics, no tracing.
  const on = await startI3xd("obs-on", {
    LOG_LEVEL: "info",
    LOG_FILE: path.join(logDir, "i3xd-obs.log"),
    I3XD_METRICS: "true",
    ...tracedAtTenPercent(sink.url),
  });
  const off = await startI3xd("obs-off", { LOG_LEVEL: "silent", I3XD_METRICS: "false" });
  // Both servers run side by side (each idle but for its simulator while the other is loaded), and the
  // two variants alternate in slices with the floor, so machine noise hits both alike.
  const plant = await discover(on.url);
  const body = { elementIds: plant.ids };
  const { floor: f, results } = await alternate([
    { target: request(`${on.url}/v1/objects/value`, "POST", body), pid: on.child.pid },
    { target: request(`${off.url}/v1/objects/value`, "POST", body), pid: off.child.pid },
  ]);
  const exported = await json<{ requests: number; bytes: number }>(`${sink.url}/stats`);
  const onRow = throughputRow(`${valueCase}, observability all on`, "sqlite", results[0], f, on.child.pid);
  onRow.extra = { otlpExports: exported.requests, otlpBytes: exported.bytes };
  add(onRow);
  add(throughputRow(`${valueCase}, observability all off`, "sqlite", results[1], f, off.child.pid));
  const ratio = round(results[0].reqPerSec / results[1].reqPerSec);
  add(figureRow("observability on / off (same case)", "sqlite", { ratio }));
  await on.close();
  await off.close();
}

// ---------------------------------------------------------------------------------------------------------
// The floor: what a Fastify route costs with i3xd's request observability and nothing else

const floorCase = "floor: Fastify route, fixed body";
const floorBare = `${floorCase}, bare`;
const floorAllOn = `${floorCase}, + metrics and tracing at 10 % (all on)`;

/** The bare floor is the reference every case alternates with; here the observed variants join it. */
async function frameworkFloor(logDir: string): Promise<void> {
  const sink = await startNodeHelper("otlp-sink.mjs");
  const observed = { FLOOR_OBSERVABILITY: "true", LOG_LEVEL: "silent", I3XD_METRICS: "false" };
  const logging = { ...observed, LOG_LEVEL: "info", LOG_FILE: path.join(logDir, "floor.log") };
  const variants: Array<{ label: string; env: Record<string, string> }> = [
    { label: "+ request context and ids", env: observed },
    { label: "+ request logging to a file", env: logging },
    {
      label: "+ metrics and tracing at 10 % (all on)",
      env: {
        ...logging,
        LOG_FILE: path.join(logDir, "floor-all.log"),
        I3XD_METRICS: "true",
        ...tracedAtTenPercent(sink.url),
      },
    },
  ];
  const servers = await Promise.all(variants.map((v) => startNodeHelper("floor.mjs", v.env)));
  const { floor: f, results } = await alternate(
    servers.map((s) => ({
      target: request(`${s.url}/v1/objects/value`, "POST", FLOOR_BODY),
      pid: s.child.pid,
    })),
  );
  add(throughputRow(floorBare, "-", f, f, floor.child.pid));
  for (let i = 0; i < variants.length; i++)
    add(throughputRow(`${floorCase}, ${variants[i].label}`, "-", results[i], f, servers[i].child.pid));
  for (const server of servers) await stop(server.child);
}

/** The raw node:http server (bench/ceiling.mjs), for scale: what Node itself answers at, next to the floor. */
async function nodeCeiling(): Promise<void> {
  const ceiling = await startNodeHelper("ceiling.mjs");
  const { floor: f, results } = await alternate([
    { target: request(ceiling.url, "POST", FLOOR_BODY), pid: ceiling.child.pid },
  ]);
  add(throughputRow("node:http ceiling (POST, ~200-byte JSON)", "-", results[0], f, ceiling.child.pid));
  await stop(ceiling.child);
}

// ---------------------------------------------------------------------------------------------------------

function evaluateTargets(): void {
  const find = (prefix: string, store = "sqlite") =>
    rows.find((r) => r.case.startsWith(prefix) && r.store === store);
  const exactly = (name: string, store = "sqlite") => rows.find((r) => r.case === name && r.store === store);
  // Observability on as in the main cases: request logging, metrics, tracing at 10 %.
  const cpuTarget = (label: string, row: Row | undefined, max: number) => {
    if (row?.cpuUsPerReq == null) return;
    targets.push({
      target: label,
      want: `<= ${max} µs CPU/req`,
      measured: `${row.cpuUsPerReq} µs (${row.ratio?.toFixed(2) ?? "-"} x floor)`,
      met: row.cpuUsPerReq <= max,
    });
  };
  cpuTarget("POST /objects/value (10 ids), observability on", exactly(valueCase), 60);
  cpuTarget("POST /objects/list (10 ids), observability on", exactly(listCase), 60);
  const bare = exactly(floorBare, "-")?.cpuUsPerReq;
  const allOn = exactly(floorAllOn, "-")?.cpuUsPerReq;
  if (bare != null && allOn != null)
    targets.push({
      target: "observability tax (floor all on - bare floor)",
      want: "<= 35 µs CPU/req",
      measured: `${allOn - bare} µs (${allOn} - ${bare})`,
      met: allOn - bare <= 35,
    });
  const history = find(historyCase);
  if (history?.p50Ms != null)
    targets.push({
      target: "history read, 36,000 points, p50",
      want: "<= 50 ms",
      measured: `${history.p50Ms} ms`,
      met: history.p50Ms <= 50,
    });
  const ingestRow = find(ingestCase);
  const pps = ingestRow?.extra?.pointsPerSec;
  if (pps !== undefined)
    targets.push({
      target: "history ingest (SQLite)",
      want: ">= 100,000 points/s",
      measured: `${pps.toLocaleString("en-US")} points/s`,
      met: pps >= 100_000,
    });
  const sse = find(sseCase);
  if (sse?.p99Ms != null)
    targets.push({
      target: `SSE delivery p99, ${SSE_SUBSCRIBERS} subscribers`,
      want: "<= 20 ms",
      measured: `${sse.p99Ms} ms`,
      met: sse.p99Ms <= 20,
    });
  // RSS is reported in MiB; the targets are in MB (10^6 bytes).
  const megabytes = (mib: number) => (mib * 1_048_576) / 1e6;
  const idle = rows.find((r) => r.case === "idle RSS" && r.store === "sqlite");
  if (idle?.rssMb != null)
    targets.push({
      target: "idle RSS",
      want: "<= 120 MB",
      measured: `${idle.rssMb} MiB (${megabytes(idle.rssMb).toFixed(1)} MB)`,
      met: megabytes(idle.rssMb) <= 120,
    });
  const after = find("RSS after the run");
  if (after?.rssMb != null)
    targets.push({
      target: "RSS after the run",
      want: "<= 250 MB",
      measured: `${after.rssMb} MiB (${megabytes(after.rssMb).toFixed(1)} MB)`,
      met: megabytes(after.rssMb) <= 250,
    });
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(ROOT, "dist", "cli.js"))) throw new Error("run `npm run build` first");
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-logs-"));
  cleanups.push(() => fs.rmSync(logDir, { recursive: true, force: true }));
  console.error(
    `i3xd benchmark: ${DURATION} s per case in ${ROUNDS} slices alternating with the floor, after ${WARMUP} s warm-up; ` +
      `${CONNECTIONS} connections; ${os.cpus().length} cores; load average ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
  );
  console.error(
    "i3xd runs with authentication off (loopback, development, no API keys) and the rate limit off " +
      "(I3XD_RATE_LIMIT_MAX=0); demo plant and simulator (1 s) on.",
  );

  floor = await startNodeHelper("floor.mjs", {});
  const sink = await startNodeHelper("otlp-sink.mjs");

  // Observability on, as the targets define it: request logging at INFO to a file, metrics, and traces
  // to a loopback OTLP receiver at 10 % sampling; simulator on.
  const observed = {
    LOG_LEVEL: "info",
    LOG_FILE: path.join(logDir, "i3xd.log"),
    I3XD_METRICS: "true",
    ...tracedAtTenPercent(sink.url),
  };
  let plant: Plant | undefined;

  const mainCases = ["objects", "list", "value", "composition", "write", "ingest", "history", "sse"];
  if (mainCases.some(wanted)) {
    for (const store of STORES) {
      const env: Record<string, string> = { ...observed };
      if (store === "postgres") env.I3XD_STORE_URL = await freshPgDatabase();
      const server = await startI3xd(store, env);
      const baseline =
        BASELINE === undefined ? undefined : await startI3xd(`${store}-baseline`, env, BASELINE);
      const idle = await idleRss(server);
      add(
        figureRow("RSS 3 s after ready", store, {
          rssMb: idle.early,
          note: "demo plant loaded; start-up garbage not yet collected",
        }),
      );
      add(
        figureRow("idle RSS", store, {
          rssMb: idle.settled,
          note: `lowest within ${IDLE_SECONDS} s of idling (simulator on)`,
        }),
      );
      plant = await discover(server.url);
      console.error(`  10 ids: ${plant.ids.join(", ")}`);
      await readWriteCases(server, store, plant, baseline);
      await baseline?.close();
      if (wanted("sse")) add(await sseFanOut(server, plant));
      add(figureRow("RSS after the run", store, { rssMb: rssMb(server.child.pid) }));
      await server.close();
    }
  }

  if (wanted("observability")) await observabilityCost(logDir);
  if (wanted("floor")) await frameworkFloor(logDir);
  if (wanted("ceiling")) await nodeCeiling();
  if (wanted("opcua")) {
    await opcuaCases({
      duration: DURATION,
      observed,
      startNodeHelper,
      startI3xd,
      cpuSeconds,
      rssMb,
      figureRow,
      add,
      addTarget: (t) => targets.push(t),
    });
  }
  if (wanted("telemetry") || ONLY?.has("shipping")) {
    const harness = { valueCase, startNodeHelper, startI3xd, discover, request, alternate, throughputRow };
    const addTarget = (t: Target) => targets.push(t);
    await telemetryCost(
      { ...harness, figureRow, add, addTarget, tracedAtTenPercent },
      logDir,
      !wanted("telemetry"),
    );
  }

  if (wanted("sparkplug"))
    await sparkplugCost(
      { startI3xd, figureRow, add, addTarget: (t) => targets.push(t), rssMb, cpuSeconds },
      observed,
    );
  if (wanted("mqtt"))
    await mqttConnectorCost(
      { startI3xd, figureRow, add, addTarget: (t) => targets.push(t), rssMb, cpuSeconds },
      observed,
    );

  const all = merge(
    floorRuns.length > 0
      ? floorRuns
      : [
          await cannon(
            request(`${floor.url}/v1/objects/value`, "POST", FLOOR_BODY),
            DURATION,
            floor.child.pid,
          ),
        ],
  );
  rows.unshift({
    case: `${floorCase}, bare, all slices`,
    store: "-",
    reqPerSec: all.reqPerSec,
    p50Ms: all.p50Ms,
    p99Ms: all.p99Ms,
    floorRps: all.reqPerSec,
    ratio: 1,
    cpuUsPerReq: cpuPerReq(all),
    rssMb: rssMb(floor.child.pid),
  });

  evaluateTargets();
  printTable();
  const out = path.join(ROOT, "bench", "results", "latest.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(
    out,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        cores: os.cpus().length,
        loadAverage: os.loadavg(),
        durationSeconds: DURATION,
        warmupSeconds: WARMUP,
        rounds: ROUNDS,
        connections: CONNECTIONS,
        rows,
        targets,
      },
      null,
      2,
    )}\n`,
  );
  console.error(`\nwritten to ${path.relative(process.cwd(), out)}`);
  if (CPU_PROF)
    console.error(`CPU profiles in ${CPU_PROF} (summarise with: node bench/profile-top.mjs <file>)`);
}

function printTable(): void {
  const header = [
    "case",
    "store",
    "req/s",
    "p50 ms",
    "p99 ms",
    "floor req/s",
    "x floor",
    "CPU µs/req",
    "RSS MiB",
    "notes",
  ];
  const body = rows.map((r) => [
    r.case,
    r.store,
    r.reqPerSec?.toString() ?? "",
    r.p50Ms?.toString() ?? "",
    r.p99Ms?.toString() ?? "",
    r.floorRps?.toString() ?? "",
    r.ratio?.toFixed(2) ?? "",
    r.cpuUsPerReq?.toString() ?? "",
    r.rssMb?.toString() ?? "",
    [
      r.extra
        ? Object.entries(r.extra)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")
        : "",
      r.note ?? "",
    ]
      .filter(Boolean)
      .join("; "),
  ]);
  table(header, body);
  if (targets.length > 0) {
    console.log("");
    table(
      ["target", "wanted", "measured", "met"],
      targets.map((t) => [t.target, t.want, t.measured, t.met === null ? "?" : t.met ? "yes" : "NO"]),
    );
  }
}

function table(header: string[], body: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of body) console.log(line(row));
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // best effort: the run's own result matters more than tidying up
      }
    }
  });
