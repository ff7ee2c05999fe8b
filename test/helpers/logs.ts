import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { logFileNames } from "../../src/observability/logger.js";
import { makeTempDir, startTestServer, type TestServer } from "./server.js";

// biome-ignore lint/suspicious/noExplicitAny: log lines are arbitrary JSON read by assertions
export type LogLine = Record<string, any>;

export type LoggedServer = TestServer & {
  /** The configured `LOG_FILE` (pino-roll writes `i3xd.<n>.log` next to it). */
  logFile: string;
  /** Every log file currently on disk, oldest first. */
  logFiles(): string[];
  /** The raw text of every log file, oldest first. */
  logText(): string;
  /** Every line written so far, parsed, in order. */
  logLines(): LogLine[];
  /** Polls the log until `predicate` matches a line (the file is written by a worker thread). */
  waitForLog(what: string, predicate: (line: LogLine) => boolean): Promise<LogLine>;
};

/**
 * `startTestServer` with its log captured: JSON lines to a rotated `LOG_FILE` in a temporary directory
 * (removed again on close), at `LOG_LEVEL=debug` unless `env` says otherwise.
 */
export async function startLoggedServer(env: Record<string, string> = {}): Promise<LoggedServer> {
  const logs = makeTempDir("i3xd-logs-");
  const logFile = path.join(logs.dir, "i3xd.log");
  let server: TestServer;
  try {
    server = await startTestServer({ LOG_LEVEL: "debug", LOG_FILE: logFile, ...env });
  } catch (err) {
    logs.remove();
    throw err;
  }
  const { dir, pattern } = logFileNames(logFile);
  const logFiles = () =>
    readdirSync(dir)
      .map((name) => ({ name, m: pattern.exec(name) }))
      .filter((f) => f.m !== null)
      .sort((a, b) => Number(a.m?.[1]) - Number(b.m?.[1]))
      .map((f) => path.join(dir, f.name));
  const logText = () =>
    logFiles()
      .map((f) => readFileSync(f, "utf8"))
      .join("");
  const logLines = () =>
    logText()
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as LogLine);
  const close = server.close.bind(server);
  return Object.assign(server, {
    logFile,
    logFiles,
    logText,
    logLines,
    async waitForLog(what: string, predicate: (line: LogLine) => boolean) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const hit = logLines().find(predicate);
        if (hit) return hit;
        if (Date.now() > deadline) throw new Error(`no log line for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close(reason?: string) {
      try {
        await close(reason);
      } finally {
        logs.remove();
      }
    },
  });
}
