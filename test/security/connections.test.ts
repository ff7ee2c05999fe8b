import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { parseMetrics, sampleValue } from "../helpers/metrics.js";
import { makeTempDir } from "../helpers/server.js";
import { childEnv, freePort, ROOT, until } from "./child.js";

// Slow connections against a server with a small file descriptor limit (ulimit -n 256 in the child's
// shell), loopback only and bounded in count and time. Before the connection caps, a few hundred idle
// half-sent requests used up the descriptors and every new client got a reset, with nothing logged.

const FD_LIMIT = 256;
const temp = makeTempDir("i3xd-connections-");
let child: ChildProcess | undefined;
const sockets: net.Socket[] = [];
afterAll(() => {
  for (const s of sockets) s.destroy();
  if (child && child.exitCode === null) child.kill("SIGKILL");
  temp.remove();
});

/** Opens `count` connections from `localAddress` that send half a request and then nothing. */
async function slowClients(port: number, localAddress: string, count: number): Promise<net.Socket[]> {
  const opened = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect({ port, host: "127.0.0.1", localAddress });
          s.on("error", () => {});
          // Read what the server answers (a 408), so its close is seen.
          s.resume();
          s.once("connect", () => {
            s.write("GET /v1/info HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
            resolve(s);
          });
          s.once("close", () => resolve(s));
        }),
    ),
  );
  sockets.push(...opened);
  return opened;
}

function getFresh(target: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(target, { agent: false, localAddress: "127.0.0.1" }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
  });
}

describe("connection caps under a small file descriptor limit", () => {
  it("keeps serving others while slow clients flood it, refuses and counts the excess, and frees slow connections", async () => {
    const port = await freePort();
    child = spawn(
      "bash",
      ["-c", `ulimit -n ${FD_LIMIT}; exec "$0" --import tsx src/cli.ts serve`, process.execPath],
      {
        cwd: ROOT,
        env: childEnv({
          I3XD_HOST: "127.0.0.1",
          I3XD_PORT: String(port),
          I3XD_DATA_DIR: temp.dir,
          I3XD_SIMULATOR_INTERVAL_MS: "3600000",
          I3XD_HEADERS_TIMEOUT: "2s",
          LOG_LEVEL: "info",
        }),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    child.stdout?.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    await until(
      "the server to answer",
      async () => ((await fetch(`${url}/health/live`)).status === 200 ? true : undefined),
      60_000,
    );
    // Each on a new connection from 127.0.0.1: a client arriving during the flood, not one already in.
    const info = async () => (await getFresh(`${url}/v1/info`)).status;
    const metrics = async () => parseMetrics((await getFresh(`${url}/metrics`)).text);

    // One address opens more slow connections than the process has descriptors.
    await slowClients(port, "127.0.0.2", 300);
    expect(await info()).toBe(200);
    // Several addresses together reach the connection cap.
    for (let i = 3; i <= 7; i++) await slowClients(port, `127.0.0.${i}`, 40);

    const samples = await metrics().catch(() => undefined);
    if (samples !== undefined) {
      expect(
        sampleValue(samples, "http_connections_rejected_total", { reason: "per_address" }),
      ).toBeGreaterThan(0);
    }
    // The headers timeout frees every slow connection, and everyone else is served again.
    await until(
      "every slow connection to be closed by the server",
      () => (sockets.every((s) => s.destroyed || s.readableEnded) ? true : undefined),
      20_000,
    );
    expect(await info()).toBe(200);
    const after = await metrics();
    expect(sampleValue(after, "http_connections_rejected_total", { reason: "per_address" })).toBeGreaterThan(
      0,
    );
    expect(
      sampleValue(after, "http_connections_rejected_total", { reason: "max_connections" }),
    ).toBeGreaterThan(0);
    expect(stdout).toContain("I3XD_MAX_CONNECTIONS_PER_ADDRESS");
    expect(stdout).toContain("(I3XD_MAX_CONNECTIONS)");
    expect(child.exitCode).toBeNull();
  }, 120_000);
});
