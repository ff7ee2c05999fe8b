import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/server.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const temp = makeTempDir("i3xd-stdout-");
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  temp.remove();
});

/** `i3xd serve` as an operator runs it, with stdout captured. */
function serve(env: Record<string, string>) {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(base))
    if (key.startsWith("I3XD_") || key.startsWith("LOG_")) delete base[key];
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "serve"], {
    cwd: ROOT,
    env: {
      ...base,
      I3XD_HOST: "127.0.0.1",
      I3XD_PORT: "0",
      I3XD_SIMULATOR_INTERVAL_MS: "3600000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, stdout: () => stdout };
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 25_000;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("logging to stdout", () => {
  it("writes JSON lines: a start-up line with what runs, request lines, and why it stopped", async () => {
    const run = serve({ I3XD_DATA_DIR: path.join(temp.dir, "json"), LOG_LEVEL: "info" });
    // biome-ignore lint/suspicious/noExplicitAny: log lines are arbitrary JSON
    const lines = (): any[] =>
      run
        .stdout()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
    const started = await until("the start-up line", () => lines().find((l) => l.message === "i3xd started"));
    expect(started).toMatchObject({ level: "INFO", logger: "i3xd.server", store: "sqlite" });
    expect(started.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(started.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(started.features).toEqual(expect.arrayContaining(["demo-plant"]));

    const res = await fetch(`${started.address}/v1/info`, { headers: { "x-request-id": "stdout-1" } });
    expect(res.status).toBe(200);
    await until("the request lines", () =>
      lines().find((l) => l.request_id === "stdout-1" && l.message === "Request completed"),
    );

    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    const all = lines();
    const stopping = all.find((l) => l.message === "Shutting down");
    expect(stopping).toMatchObject({ level: "INFO", reason: "SIGTERM" });
    // The last line made it out before the process exited.
    expect(all.at(-1)).toMatchObject({ message: "Stopped", reason: "SIGTERM" });
    for (const line of all) {
      expect(Object.keys(line).slice(0, 3)).toEqual(["level", "timestamp", "logger"]);
      expect(line.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });

  it("writes human-readable lines with LOG_FORMAT=pretty", async () => {
    const run = serve({ I3XD_DATA_DIR: path.join(temp.dir, "pretty"), LOG_FORMAT: "pretty", NO_COLOR: "1" });
    const line = await until("the start-up line", () =>
      run
        .stdout()
        .split("\n")
        .find((l) => l.includes("i3xd started")),
    );
    expect(line).toMatch(/INFO.*\[i3xd\.server\] i3xd started/);
    expect(() => JSON.parse(line)).toThrow();
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  });
});
