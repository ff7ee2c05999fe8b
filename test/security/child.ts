// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");

/** The environment for a child i3xd: the parent's, minus every I3XD_ setting not given in `extra`. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of Object.keys(env)) {
    if ((key.startsWith("I3XD_") || key === "NODE_ENV") && !(key in extra)) delete env[key];
  }
  return env;
}

export interface CliRun {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

const running: ChildProcess[] = [];

/** `node --import tsx src/cli.ts <args>` in the repository root. */
export function runCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** Kills every child this file started that is still running (afterAll). */
export function killChildren(): void {
  for (const child of running)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value; a deadline, not a timing assertion. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  deadlineMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `i3xd serve` on a free loopback port and waits until it answers. */
export async function serveChild(
  env: Record<string, string>,
): Promise<CliRun & { url: string; port: number }> {
  const port = await freePort();
  const run = runCli(["serve"], {
    I3XD_HOST: "127.0.0.1",
    I3XD_PORT: String(port),
    I3XD_SIMULATOR_INTERVAL_MS: "3600000",
    LOG_LEVEL: "info",
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  const answered = until(
    "the server to answer",
    async () => ((await fetch(`${url}/health/live`)).status === 200 ? true : undefined),
    60_000,
  );
  const died = run.exited.then((code) => {
    throw new Error(`i3xd serve exited with ${code} before answering: ${run.stderr()}`);
  });
  await Promise.race([answered, died]);
  died.catch(() => {});
  return Object.assign(run, { url, port });
}

/**
 * Starts a request whose headers the server has accepted (it answered 100 Continue) but whose body is not
 * sent yet: in flight, deterministically, when the signal arrives.
 */
export async function startHeldRequest(url: string, method: string, body: string) {
  const req = http.request(url, {
    method,
    agent: false,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      expect: "100-continue",
    },
  });
  const accepted = new Promise<void>((resolve) => req.once("continue", () => resolve()));
  const answer = new Promise<{ status: number; body: any }>((resolve, reject) => {
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
  });
  req.flushHeaders();
  await accepted;
  return { finish: () => req.end(body), answer };
}
