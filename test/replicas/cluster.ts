import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** One `i3xd serve` process: a replica as operators run it, sharing a PostgreSQL database with others. */
export interface Replica {
  name: string;
  url: string;
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs(): Array<Record<string, unknown>>;
  /** True while the process is running. */
  alive(): boolean;
  /** What the process wrote to stderr (a crash's stack trace). */
  stderr(): string;
  stop(): Promise<void>;
}

const started: Replica[] = [];

/**
 * Starts `node --import tsx src/cli.ts serve` on port 0 and waits for its "i3xd started" log line, which
 * carries the address. The parent's I3XD_ settings are not inherited; `env` gives the replica's own.
 * `entry` is the script run in place of src/cli.ts (one that registers a test-only connector kind first).
 */
export async function startReplica(
  name: string,
  env: Record<string, string>,
  entry = "src/cli.ts",
): Promise<Replica> {
  const dataDir = mkdtempSync(path.join(tmpdir(), `i3xd-replica-${name}-`));
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("I3XD_") && k !== "NODE_ENV" && !k.startsWith("OTEL_") && k !== "SENTRY_DSN") {
      childEnv[k] = v;
    }
  }
  Object.assign(childEnv, {
    I3XD_HOST: "127.0.0.1",
    I3XD_PORT: "0",
    I3XD_DATA_DIR: dataDir,
    I3XD_SIMULATOR_INTERVAL_MS: "3600000",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    ...env,
  });
  const child = spawn(process.execPath, ["--import", "tsx", entry, "serve"], {
    cwd: ROOT,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = "";
  let buffer = "";
  let resolveUrl: (url: string) => void = () => {};
  const address = new Promise<string>((resolve) => {
    resolveUrl = resolve;
  });
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    buffer += chunk;
    let cut = buffer.indexOf("\n");
    while (cut >= 0) {
      const line = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 1);
      try {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (parsed.message === "i3xd started") resolveUrl(String(parsed.address));
      } catch {
        // not a log line
      }
      cut = buffer.indexOf("\n");
    }
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await Promise.race([
    address,
    exited.then((code) => {
      throw new Error(`replica ${name} exited (${code}) during start-up: ${stderr}`);
    }),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`replica ${name} did not start: ${stderr}`)), 60_000).unref(),
    ),
  ]);
  const replica: Replica = {
    name,
    url,
    child,
    logs: () => lines,
    alive: () => child.exitCode === null && child.signalCode === null,
    stderr: () => stderr,
    async stop() {
      if (replica.alive()) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  started.push(replica);
  return replica;
}

/** Stops every replica this file started (afterAll). */
export async function stopReplicas(): Promise<void> {
  await Promise.all(started.splice(0).map((r) => r.stop()));
}

/** Polls until `probe` returns a value; a deadline, not a timing assertion. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  deadlineMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One sample of a metric (with an optional label selector such as `{cache_type="value"}`) from `/metrics`. */
export async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}
