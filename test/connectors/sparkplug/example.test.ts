// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import { uniqueGroup } from "../../helpers/sparkplug-edge-node.js";
import { killChildren, ROOT } from "../../security/child.js";
import { eventually } from "../test-source.js";

// examples/sparkplug as its README runs it: the edge node script and the example connectors file, on the
// local broker. Only the Sparkplug group is one of this run's own, so that nothing else on the broker is
// mistaken for the example (or the example for anything else).

const group = uniqueGroup("example");
const files = makeTempDir("i3xd-sparkplug-example-");
afterAll(() => {
  killChildren();
  files.remove();
});

describe("examples/sparkplug", () => {
  it("births the pump station into objects, streams its data, and takes a written setpoint", async () => {
    const example = readFileSync(path.join(ROOT, "examples/sparkplug/connectors.yaml"), "utf8");
    const file = path.join(files.dir, "connectors.yaml");
    expect(example).toContain("groups: [Riverside]");
    writeFileSync(file, example.replace("groups: [Riverside]", `groups: [${group}]`));
    let server: TestServer | undefined;
    const edgeNode = spawn(process.execPath, ["--import", "tsx", "examples/sparkplug/edge-node.ts"], {
      cwd: ROOT,
      env: { ...process.env, SPARKPLUG_GROUP: group, PUBLISH_INTERVAL_MS: "200" },
      stdio: "ignore",
    });
    try {
      server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
      const url = server.url;
      const pump = `spBv1.0/${group}/pumping/pump-101`;
      const setpoint = `${pump}#Setpoints/Speed`;
      const read = async (ids: string[], maxDepth = 1) =>
        (await postJson(url, "/v1/objects/value", { elementIds: ids, maxDepth })).body.results.map(
          (r: any) => r.result,
        );
      // The device is a composition of its metrics: a whole read reaches the Pump instance's members too.
      const [device] = await eventually(async () => {
        const r = await read([pump], 0);
        return r[0]?.components && Object.keys(r[0].components).length > 0 ? r : undefined;
      }, 30_000);
      expect(JSON.stringify(device)).toContain(`${pump}#Pump`);
      await eventually(async () => (await read([setpoint]))[0]?.quality === "Good");

      // Write-back: a DCMD by alias; the edge node applies it and reports it in its next DDATA.
      const put = await postJson(
        url,
        "/v1/objects/value",
        { updates: [{ elementId: setpoint, value: { value: 65 } }] },
        { method: "PUT" },
      );
      expect(put.body.results[0].success).toBe(true);
      const refused = await postJson(
        url,
        "/v1/objects/value",
        { updates: [{ elementId: setpoint, value: { value: "fast" } }] },
        { method: "PUT" },
      );
      expect(refused.body.results[0].success).toBe(false);
      expect(refused.body.results[0].responseDetail.status).toBe(400);
      await eventually(async () => (await read([setpoint]))[0]?.value === 65);
    } finally {
      edgeNode.kill("SIGINT");
      await server?.close();
    }
  }, 60_000);
});
