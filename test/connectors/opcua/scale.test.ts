// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { sampleValue, scrapeSamples } from "../../helpers/metrics.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";

/**
 * 10,000 monitored variables on one connector: every one reaches the store, within bounds of time and
 * memory. The figures it prints are the ones bench/README.md reports (OPC UA, scale).
 */

const VARIABLES = 10_000;
const files = makeTempDir("i3xd-opcua-scale-");
afterAll(() => files.remove());

describe("an OPC UA server with 10,000 variables", () => {
  let plant: PlantServer | undefined;
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.close();
    await plant?.stop();
  });

  it("monitors them all and stores a first value of each", { timeout: 180_000 }, async () => {
    plant = await startPlantServer({ pkiDir: path.join(files.dir, "server-pki"), bulkVariables: VARIABLES });
    const file = path.join(files.dir, "connectors.yaml");
    writeFileSync(
      file,
      `connectors:\n  - { name: bulk, kind: opcua, endpointUrl: ${plant.endpointUrl}, maxNodes: 20000 }\n`,
    );
    global.gc?.();
    const before = process.memoryUsage();
    const started = Date.now();
    server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
    const running = server;
    let stored = 0;
    for (const end = Date.now() + 90_000; Date.now() < end; ) {
      const samples = await scrapeSamples(running.url);
      stored = sampleValue(samples, "connector_messages_total", { connector: "bulk", outcome: "stored" });
      // The bulk variables and the ten of the pump and the tank.
      if (stored >= VARIABLES + 10) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const firstValuesMs = Date.now() - started;
    const after = process.memoryUsage();
    const samples = await scrapeSamples(running.url);
    expect(sampleValue(samples, "opcua_monitored_items", { connector: "bulk" })).toBe(VARIABLES + 10);
    expect(stored).toBeGreaterThanOrEqual(VARIABLES + 10);
    const last = `bulk:nsu=${PLANT_NAMESPACE};s=Bulk.V${VARIABLES - 1}`;
    const res = await postJson(running.url, "/v1/objects/value", { elementIds: [last] });
    expect(res.body.results[0].result).toMatchObject({ value: VARIABLES - 1, quality: "Good" });

    const rssMb = (after.rss - before.rss) / 2 ** 20;
    const heapMb = (after.heapUsed - before.heapUsed) / 2 ** 20;
    console.log(
      `opcua scale: ${VARIABLES} variables, first values of all in ${firstValuesMs} ms, ` +
        `rss +${rssMb.toFixed(0)} MB, heap +${heapMb.toFixed(0)} MB (server, store and connector)`,
    );
    // Bounds that catch a regression by an order of magnitude, not a measurement.
    expect(firstValuesMs).toBeLessThan(60_000);
    expect(rssMb).toBeLessThan(1024);
  });
});
