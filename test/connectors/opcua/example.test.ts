// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";

/** examples/opcua as its README runs it: the pump station server script and the connectors file. */

const ROOT = path.resolve(import.meta.dirname, "../../..");
const id = (s: string) => `riverside:nsu=urn:i3xd:example:riverside;s=${s}`;

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  return port;
}

async function until(check: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("examples/opcua", () => {
  const files = makeTempDir("i3xd-opcua-example-");
  let child: ChildProcess | undefined;
  let server: TestServer | undefined;

  beforeAll(async () => {
    const port = await freePort();
    child = spawn(
      process.execPath,
      ["--import", "tsx", "examples/opcua/pump-station-server.ts", String(port)],
      {
        cwd: ROOT,
        env: { ...process.env, PKI_DIR: path.join(files.dir, "server-pki") },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout?.on("data", (chunk) => {
      out += chunk;
    });
    await until(async () => out.includes("OPC UA pump station at"));
    process.env.PUMP_STATION_ENDPOINT = `opc.tcp://127.0.0.1:${port}`;
    server = await startTestServer({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: path.join(ROOT, "examples/opcua/connectors.yaml"),
    });
  });
  afterAll(async () => {
    await server?.close();
    child?.kill("SIGTERM");
    if (child && child.exitCode === null) await once(child, "exit");
    delete process.env.PUMP_STATION_ENDPOINT;
    files.remove();
  });

  it("bridges the pump station: moving values with units, and a writable mode", async () => {
    const running = server as TestServer;
    const speed = id("pump-101-motor-speed");
    const read = async () =>
      (await postJson(running.url, "/v1/objects/value", { elementIds: [speed] })).body.results[0].result;
    await until(async () => (await read()).quality === "Good");
    const first = (await read()).timestamp;
    await until(async () => (await read()).timestamp !== first);

    const list = await postJson(running.url, "/v1/objects/list", {
      elementIds: [speed],
      includeMetadata: true,
    });
    expect(list.body.results[0].result.metadata.system.opcua.engineeringUnits.displayName).toBe("rpm");

    const write = await postJson(
      running.url,
      "/v1/objects/value",
      { updates: [{ elementId: id("pump-101.mode"), value: { value: "Manual" } }] },
      { method: "PUT" },
    );
    expect(write.body.results[0].success).toBe(true);
    await until(
      async () =>
        (await postJson(running.url, "/v1/objects/value", { elementIds: [id("pump-101.mode")] })).body
          .results[0].result.value === "Manual",
    );
  });
});
