import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseMetrics, type Sample } from "../helpers/metrics.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// biome-ignore lint/suspicious/noExplicitAny: log lines are arbitrary JSON read by assertions
export type LogLine = Record<string, any>;

export interface ChildServer {
  url: string;
  dataDir: string;
  /** Every JSON line the server wrote to stdout so far, in order. */
  lines(): LogLine[];
  /** Raw stdout lines (exactly as written, for byte-for-byte comparisons). */
  rawLines(): string[];
  stderr(): string;
  metrics(): Promise<Sample[]>;
  /** SIGTERM and wait for the exit code (graceful shutdown, telemetry flushed). */
  stop(): Promise<number | null>;
}

/**
 * Runs `i3xd serve` in a child process, as production does (`node --import tsx src/cli.ts serve`): tracing
 * and Sentry hook the process itself, so they cannot share the test runner's. Port 0, a temporary data
 * directory, the demo plant, and a simulator that stays quiet unless `env` says otherwise. `entry` is the
 * script run in place of src/cli.ts (one that registers a test-only connector kind first).
 */
export async function startChildServer(
  env: Record<string, string>,
  entry = "src/cli.ts",
): Promise<ChildServer> {
  const dataDir = env.I3XD_DATA_DIR ?? mkdtempSync(path.join(tmpdir(), "i3xd-telemetry-"));
  const child = spawn(process.execPath, ["--import", "tsx", entry, "serve"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      NODE_ENV: "test",
      I3XD_HOST: "127.0.0.1",
      I3XD_PORT: "0",
      I3XD_DATA_DIR: dataDir,
      I3XD_DEMO: "true",
      I3XD_SIMULATOR_INTERVAL_MS: "3600000",
      LOG_LEVEL: "info",
      TELEMETRY_FLUSH_TIMEOUT_MS: "3000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const raw: string[] = [];
  let carry = "";
  let err = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    const parts = (carry + chunk).split("\n");
    carry = parts.pop() ?? "";
    for (const p of parts) if (p.trim() !== "") raw.push(p);
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const parsed = () =>
    raw.flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${err}`)), 30_000);
    const poll = setInterval(() => {
      const started = parsed().find((l) => l.message === "i3xd started");
      if (started) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve(String(started.address));
      }
    }, 25);
    exited.then((code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting:\n${err}`));
    });
  });

  let stopped: Promise<number | null> | undefined;
  return {
    url,
    dataDir,
    lines: parsed,
    rawLines: () => [...raw],
    stderr: () => err,
    async metrics() {
      const res = await fetch(`${url}/metrics`);
      return parseMetrics(await res.text());
    },
    stop() {
      stopped ??= stopChild(child, exited).finally(() => rmSync(dataDir, { recursive: true, force: true }));
      return stopped;
    },
  };
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/** Runs `fn` for `total` items with at most `concurrency` in flight. */
export async function inParallel(total: number, concurrency: number, fn: (i: number) => Promise<void>) {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total) {
      const i = next++;
      await fn(i);
    }
  });
  await Promise.all(workers);
}
