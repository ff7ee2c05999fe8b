/**
 * `npm run bench`: i3xd against a raw node:http ceiling, measured in the same run on the same machine.
 * Prints one table and writes it as JSON to bench/results/latest.json. Speed is judged by ratios from one
 * run, never by absolute numbers compared across machines.
 *
 * Knobs (environment): BENCH_DURATION seconds per case (10), BENCH_WARMUP seconds (2), BENCH_CONNECTIONS
 * (50), BENCH_STORES comma list of `sqlite`, `postgres` (sqlite), BENCH_PG_URL admin connection for
 * the PostgreSQL column (postgres://postgres@127.0.0.1:5432/postgres), BENCH_CASES comma list to run a subset.
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

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const STORES = (process.env.BENCH_STORES ?? "sqlite").split(",").map((s) => s.trim());
const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const ONLY = process.env.BENCH_CASES ? new Set(process.env.BENCH_CASES.split(",")) : undefined;

interface Row {
  case: string;
  store: string;
  reqPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  ratio: number | null;
  rssMb: number | null;
  note?: string;
  extra?: Record<string, number>;
}

const rows: Row[] = [];
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

async function startNodeHelper(script: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [path.join(ROOT, "bench", script)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  const { port } = JSON.parse(line.toString().split("\n")[0]) as { port: number };
  cleanups.push(() => stop(child));
  return { child, port };
}

interface Server {
  child: ChildProcess;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

async function startI3xd(label: string, env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `i3xd-bench-${label}-`));
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "cli.js"), "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      I3XD_HOST: "127.0.0.1",
      I3XD_PORT: String(port),
      I3XD_DATA_DIR: dataDir,
      I3XD_DEMO: "true",
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
  const server: Server = {
    child,
    url,
    dataDir,
    async close() {
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
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------
// Load

interface LoadResult {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

async function load(
  url: string,
  opts: { method?: "GET" | "POST" | "PUT"; body?: unknown; connections?: number; duration?: number },
): Promise<LoadResult> {
  const base = {
    url,
    method: opts.method ?? "GET",
    connections: opts.connections ?? CONNECTIONS,
    headers: { "content-type": "application/json", accept: "application/json" },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  };
  if (WARMUP > 0) await autocannon({ ...base, duration: WARMUP });
  const r = await autocannon({ ...base, duration: opts.duration ?? DURATION });
  return {
    reqPerSec: Math.round(r.requests.average),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, {
    ...init,
    headers: { "content-type": "application/json", accept: "application/json", ...(init?.headers ?? {}) },
  });
  const body = (await res.json()) as T;
  if (!res.ok && res.status !== 206)
    throw new Error(`${init?.method ?? "GET"} ${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// ---------------------------------------------------------------------------------------------------------
// The demo plant, as a client discovers it

interface Plant {
  numericLeaves: string[];
  composition: string;
}

async function discover(url: string): Promise<Plant> {
  const types = await json<{ result: Array<{ elementId: string; schema: Record<string, unknown> }> }>(
    `${url}/v1/objecttypes`,
  );
  const plain = new Set(
    types.result
      .filter(
        (t) => t.schema.type === "number" && t.schema.minimum === undefined && t.schema.maximum === undefined,
      )
      .map((t) => t.elementId),
  );
  const numeric = new Set(types.result.filter((t) => t.schema.type === "number").map((t) => t.elementId));
  const objects = await json<{
    result: Array<{ elementId: string; typeElementId: string; isComposition: boolean }>;
  }>(`${url}/v1/objects`);
  const unbounded = objects.result.filter((o) => plain.has(o.typeElementId)).map((o) => o.elementId);
  const leaves =
    unbounded.length >= 1
      ? unbounded
      : objects.result.filter((o) => numeric.has(o.typeElementId)).map((o) => o.elementId);
  if (leaves.length === 0) throw new Error("the demo plant has no numeric leaf objects");
  const composition =
    objects.result.find((o) => o.elementId === "pump-101" && o.isComposition)?.elementId ??
    objects.result.find((o) => o.isComposition)?.elementId;
  if (!composition) throw new Error("the demo plant has no composition object");
  const numericLeaves = Array.from({ length: 10 }, (_, i) => leaves[i % leaves.length]);
  return { numericLeaves, composition };
}

// ---------------------------------------------------------------------------------------------------------
// Cases

function wanted(name: string): boolean {
  return !ONLY || ONLY.has(name);
}

function record(row: Row, ceilingRps: number | null): void {
  const ratio =
    row.reqPerSec !== null && ceilingRps ? Math.round((row.reqPerSec / ceilingRps) * 100) / 100 : null;
  const full = { ...row, ratio: row.ratio ?? ratio };
  rows.push(full);
  const extra = full.extra ? ` ${JSON.stringify(full.extra)}` : "";
  console.error(
    `  ${full.case} [${full.store}]: ${full.reqPerSec ?? "-"} req/s, p50 ${full.p50Ms ?? "-"} ms, p99 ${full.p99Ms ?? "-"} ms, ratio ${full.ratio ?? "-"}${extra}`,
  );
}

function checkLoad(r: LoadResult): string | undefined {
  if (r.non2xx > 0 || r.errors > 0) return `${r.non2xx} non-2xx, ${r.errors} errors`;
  return undefined;
}

async function readWriteCases(server: Server, store: string, ceilingRps: number): Promise<void> {
  const plant = await discover(server.url);
  const ids = plant.numericLeaves;

  if (wanted("objects")) {
    const r = await load(`${server.url}/v1/objects`, {});
    record(
      {
        case: "GET /v1/objects",
        store,
        ...r,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        note: checkLoad(r),
      },
      ceilingRps,
    );
  }
  if (wanted("list")) {
    const r = await load(`${server.url}/v1/objects/list`, { method: "POST", body: { elementIds: ids } });
    record(
      {
        case: "POST /v1/objects/list (10 ids)",
        store,
        ...r,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        note: checkLoad(r),
      },
      ceilingRps,
    );
  }
  if (wanted("value")) {
    const r = await load(`${server.url}/v1/objects/value`, { method: "POST", body: { elementIds: ids } });
    record(
      {
        case: "POST /v1/objects/value (10 ids)",
        store,
        ...r,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        note: checkLoad(r),
      },
      ceilingRps,
    );
  }
  if (wanted("composition")) {
    const r = await load(`${server.url}/v1/objects/value`, {
      method: "POST",
      body: { elementIds: [plant.composition], maxDepth: 0 },
    });
    record(
      {
        case: `POST /v1/objects/value (${plant.composition}, maxDepth 0)`,
        store,
        ...r,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        note: checkLoad(r),
      },
      ceilingRps,
    );
  }
  if (wanted("write")) {
    const updates = ids.map((elementId, i) => ({ elementId, value: { value: 40 + i, quality: "Good" } }));
    const r = await load(`${server.url}/v1/objects/value`, { method: "PUT", body: { updates } });
    record(
      {
        case: "PUT /v1/objects/value (10 ids)",
        store,
        ...r,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        note: checkLoad(r),
      },
      ceilingRps,
    );
  }
  if (wanted("ingest")) {
    const res = await ingest(server.url, ids);
    record(
      {
        case: "PUT /v1/objects/history (1,000-point batches)",
        store,
        reqPerSec: res.reqPerSec,
        p50Ms: res.p50Ms,
        p99Ms: res.p99Ms,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        extra: { pointsPerSec: res.pointsPerSec },
        note: res.note,
      },
      null,
    );
  }
  if (wanted("history")) {
    const res = await historyRead(server.url, ids);
    record(
      {
        case: "POST /v1/objects/history (10 ids x 1 h at 1 Hz)",
        store,
        ...res.load,
        ratio: null,
        rssMb: rssMb(server.child.pid),
        extra: { points: res.points },
        note: res.note,
      },
      null,
    );
  }
}

/** Sustained history ingest: several writers, each sending 1,000-point batches with fresh timestamps. */
async function ingest(url: string, ids: string[]) {
  const writers = 4;
  const batch = 1000;
  const perElement = batch / ids.length;
  // Far in the past and one hour apart per writer and batch, so no two batches touch the same records.
  let nextSecond = Date.UTC(2019, 0, 1) / 1000;
  const latencies: number[] = [];
  let points = 0;
  let failures = 0;
  const stopAt = Date.now() + (WARMUP + DURATION) * 1000;
  const measureFrom = Date.now() + WARMUP * 1000;
  let measuredStart = 0;
  let measuredPoints = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: writers });
  async function writer() {
    while (Date.now() < stopAt) {
      const start = nextSecond;
      nextSecond += perElement;
      const updates = [];
      for (const elementId of new Set(ids)) {
        for (let s = 0; s < perElement; s++) {
          updates.push({
            elementId,
            value: {
              value: 10 + (s % 7),
              quality: "Good",
              timestamp: new Date((start + s) * 1000).toISOString(),
            },
          });
        }
      }
      const t0 = performance.now();
      const status = await put(`${url}/v1/objects/history`, { updates }, agent);
      const dt = performance.now() - t0;
      if (status !== 200) failures++;
      if (Date.now() >= measureFrom) {
        if (!measuredStart) measuredStart = performance.now() - dt;
        measuredPoints += updates.length;
        latencies.push(dt);
      }
      points += updates.length;
    }
  }
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsed = (performance.now() - measuredStart) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    reqPerSec: Math.round(latencies.length / elapsed),
    p50Ms: round(quantile(latencies, 0.5)),
    p99Ms: round(quantile(latencies, 0.99)),
    pointsPerSec: Math.round(measuredPoints / elapsed),
    note: failures > 0 ? `${failures} failed batches` : undefined,
    points,
  };
}

function put(url: string, body: unknown, agent: http.Agent): Promise<number> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: "PUT",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Writes one hour at 1 Hz for each of 10 elements far in the past, then reads that hour back under load. */
async function historyRead(url: string, ids: string[]) {
  const unique = [...new Set(ids)];
  const startMs = Date.UTC(2018, 5, 1);
  const agent = new http.Agent({ keepAlive: true });
  for (const elementId of unique) {
    for (let offset = 0; offset < 3600; offset += 1000) {
      const updates = [];
      for (let s = offset; s < Math.min(offset + 1000, 3600); s++) {
        updates.push({
          elementId,
          value: {
            value: 20 + Math.sin(s / 60),
            quality: "Good",
            timestamp: new Date(startMs + s * 1000).toISOString(),
          },
        });
      }
      const status = await put(`${url}/v1/objects/history`, { updates }, agent);
      if (status !== 200) throw new Error(`history setup write failed: ${status}`);
    }
  }
  agent.destroy();
  // Ten distinct elements are needed for 36,000 points; repeat ids only if the plant has fewer leaves.
  const body = {
    elementIds: ids,
    startTime: new Date(startMs).toISOString(),
    endTime: new Date(startMs + 3599_000).toISOString(),
  };
  const check = await json<{ results: Array<{ result?: { values: unknown[] } }> }>(
    `${url}/v1/objects/history`,
    {
      method: "POST",
      body: JSON.stringify(body),
    },
  );
  const points = check.results.reduce((n, r) => n + (r.result?.values.length ?? 0), 0);
  // One connection: the target is the latency of one read, not of a queue of 50 multi-megabyte reads.
  const r = await load(`${url}/v1/objects/history`, { method: "POST", body, connections: 1 });
  return {
    load: r,
    points,
    note: points !== 36_000 ? `read ${points} points, expected 36000` : checkLoad(r),
  };
}

/** 100 subscribers with an SSE stream each; one element written 50 times a second; write-to-receipt latency. */
async function sseFanOut(url: string, elementId: string): Promise<Row> {
  const subscribers = 100;
  const writes = Number(process.env.BENCH_SSE_WRITES ?? 300);
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  const streams: http.ClientRequest[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: subscribers + 10 });
  for (let i = 0; i < subscribers; i++) {
    const clientId = `bench-client-${i}`;
    const sub = await json<{ result: { subscriptionId: string } }>(`${url}/v1/subscriptions`, {
      method: "POST",
      body: JSON.stringify({ clientId, displayName: `bench ${i}` }),
    });
    const subscriptionId = sub.result.subscriptionId;
    await json(`${url}/v1/subscriptions/register`, {
      method: "POST",
      body: JSON.stringify({ clientId, subscriptionId, elementIds: [elementId] }),
    });
    const payload = JSON.stringify({ clientId, subscriptionId });
    const req = http.request(`${url}/v1/subscriptions/stream`, {
      method: "POST",
      agent,
      headers: {
        "content-type": "application/json",
        accept: "text/event-stream",
        "content-length": Buffer.byteLength(payload),
      },
    });
    await new Promise<void>((resolve, reject) => {
      req.on("response", (res) => {
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          const now = performance.now();
          buf += chunk;
          let idx = buf.indexOf("\n\n");
          while (idx >= 0) {
            const event = buf.slice(0, idx);
            buf = buf.slice(idx + 2);
            for (const line of event.split("\n")) {
              if (!line.startsWith("data:")) continue;
              for (const u of JSON.parse(line.slice(5)) as Array<{ timestamp: string }>) {
                const t = sentAt.get(u.timestamp);
                if (t !== undefined) latencies.push(now - t);
              }
            }
            idx = buf.indexOf("\n\n");
          }
        });
        resolve();
      });
      req.on("error", reject);
      req.end(payload);
    });
    streams.push(req);
  }
  await sleep(500);
  const writeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let ms = Date.now() + 1000;
  for (let i = 0; i < writes; i++) {
    // Unique, increasing timestamps identify our writes among the simulator's.
    ms += 1;
    const timestamp = new Date(ms).toISOString();
    sentAt.set(timestamp, performance.now());
    await put(
      `${url}/v1/objects/value`,
      { updates: [{ elementId, value: { value: 50 + (i % 10), quality: "Good", timestamp } }] },
      writeAgent,
    );
    await sleep(20);
  }
  await sleep(1000);
  for (const s of streams) s.destroy();
  agent.destroy();
  writeAgent.destroy();
  latencies.sort((a, b) => a - b);
  const expected = writes * subscribers;
  return {
    case: "SSE fan-out (100 subscribers, write to receipt)",
    store: "sqlite",
    reqPerSec: null,
    p50Ms: round(quantile(latencies, 0.5)),
    p99Ms: round(quantile(latencies, 0.99)),
    ratio: null,
    rssMb: null,
    extra: { delivered: latencies.length, expected },
    note: latencies.length < expected ? `${expected - latencies.length} deliveries missing` : undefined,
  };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const round = (n: number) => Math.round(n * 100) / 100;

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

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(ROOT, "dist", "cli.js"))) throw new Error("run `npm run build` first");
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-logs-"));
  cleanups.push(() => fs.rmSync(logDir, { recursive: true, force: true }));
  console.error(
    `i3xd benchmark: ${DURATION} s per case after ${WARMUP} s warm-up, ${CONNECTIONS} connections, ${os.cpus().length} cores`,
  );

  const ceiling = await startNodeHelper("ceiling.mjs");
  const ceilingUrl = `http://127.0.0.1:${ceiling.port}`;
  const c = await load(ceilingUrl, { method: "POST", body: { elementIds: ["a", "b"] } });
  record(
    {
      case: "node:http ceiling (POST, ~200-byte JSON)",
      store: "-",
      ...c,
      ratio: 1,
      rssMb: rssMb(ceiling.child.pid),
    },
    c.reqPerSec,
  );
  const ceilingRps = c.reqPerSec;

  // Observability as shipped: request logging at INFO to a file, metrics on, simulator on.
  const observed = {
    LOG_LEVEL: "info",
    LOG_FILE: path.join(logDir, "i3xd.log"),
    I3XD_SIMULATOR_INTERVAL_MS: "1000",
  };

  for (const store of STORES) {
    const env: Record<string, string> = { ...observed };
    if (store === "postgres") env.I3XD_STORE_URL = await freshPgDatabase();
    const server = await startI3xd(store, env);
    await sleep(3000);
    const idle = rssMb(server.child.pid);
    console.error(`i3xd on ${store}: idle RSS ${idle} MiB`);
    rows.push({
      case: "idle RSS",
      store,
      reqPerSec: null,
      p50Ms: null,
      p99Ms: null,
      ratio: null,
      rssMb: idle,
    });
    await readWriteCases(server, store, ceilingRps);
    if (store === "sqlite" && wanted("sse")) {
      const plant = await discover(server.url);
      const row = await sseFanOut(server.url, plant.numericLeaves[0]);
      row.rssMb = rssMb(server.child.pid);
      record(row, null);
    }
    rows.push({
      case: "RSS after the run",
      store,
      reqPerSec: null,
      p50Ms: null,
      p99Ms: null,
      ratio: null,
      rssMb: rssMb(server.child.pid),
    });
    await server.close();
  }

  if (wanted("observability")) {
    const sink = await startNodeHelper("otlp-sink.mjs");
    const results: Record<string, LoadResult> = {};
    const variants: Record<string, Record<string, string>> = {
      "all on": {
        ...observed,
        LOG_FILE: path.join(logDir, "i3xd-obs.log"),
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.1",
      },
      "all off": { LOG_LEVEL: "silent", I3XD_METRICS: "false", I3XD_SIMULATOR_INTERVAL_MS: "1000" },
    };
    for (const [variant, env] of Object.entries(variants)) {
      const server = await startI3xd(variant.replace(" ", "-"), env);
      await sleep(1000);
      const plant = await discover(server.url);
      const r = await load(`${server.url}/v1/objects/value`, {
        method: "POST",
        body: { elementIds: plant.numericLeaves },
      });
      results[variant] = r;
      record(
        {
          case: `POST /v1/objects/value (10 ids), observability ${variant}`,
          store: "sqlite",
          ...r,
          ratio: null,
          rssMb: rssMb(server.child.pid),
          note: checkLoad(r),
        },
        ceilingRps,
      );
      await server.close();
    }
    const on = results["all on"].reqPerSec;
    const off = results["all off"].reqPerSec;
    rows.push({
      case: "observability on / off",
      store: "sqlite",
      reqPerSec: null,
      p50Ms: null,
      p99Ms: null,
      ratio: round(on / off),
      rssMb: null,
    });
  }

  printTable();
  const out = path.join(ROOT, "bench", "results", "latest.json");
  fs.writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: os.cpus().length, durationSeconds: DURATION, connections: CONNECTIONS, rows }, null, 2)}\n`,
  );
  console.error(`\nwritten to ${path.relative(process.cwd(), out)}`);
}

function printTable(): void {
  const header = ["case", "store", "req/s", "p50 ms", "p99 ms", "x ceiling", "RSS MiB", "notes"];
  const body = rows.map((r) => [
    r.case,
    r.store,
    r.reqPerSec?.toString() ?? "",
    r.p50Ms?.toString() ?? "",
    r.p99Ms?.toString() ?? "",
    r.ratio?.toFixed(2) ?? "",
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
