// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions

import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { clearRetained, uniquePrefix } from "../../helpers/mqtt.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import { killChildren, ROOT } from "../../security/child.js";
import { eventually } from "../test-source.js";

// examples/mqtt as the README runs it: the publisher script and the example connectors file, on the local
// broker. Only the topics move under a prefix of this run (UNS_ROOT, and the same prefix put in front of
// the file's rules), so that the test shares no retained topic with anyone.

const prefix = uniquePrefix("example");
const files = makeTempDir("i3xd-mqtt-example-");
afterAll(async () => {
  killChildren();
  files.remove();
  await clearRetained(prefix);
});

describe("examples/mqtt", () => {
  it("publishes the pump station, which arrives in i3xd with compositions and a writable setpoint", async () => {
    const example = readFileSync(path.join(ROOT, "examples/mqtt/connectors.yaml"), "utf8");
    const file = path.join(files.dir, "connectors.yaml");
    writeFileSync(file, example.replaceAll('topic: "riverside/', `topic: "${prefix}/riverside/`));
    const publisher = spawn(process.execPath, ["--import", "tsx", "examples/mqtt/publish-pump-station.ts"], {
      cwd: ROOT,
      env: { ...process.env, UNS_ROOT: `${prefix}/riverside/pumping`, PUBLISH_INTERVAL_MS: "200" },
      stdio: "ignore",
    });
    let server: TestServer | undefined;
    try {
      server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
      const url = server.url;
      const id = (rest: string) => `${prefix}/riverside/pumping/${rest}`;
      const read = async (ids: string[], maxDepth = 1) =>
        (await postJson(url, "/v1/objects/value", { elementIds: ids, maxDepth })).body.results.map(
          (r: any) => r.result,
        );
      const [motor] = await eventually(async () => {
        const r = await read([id("pump-101/motor")], 0);
        // Members are created before their values are stored: wait for the value.
        return r[0]?.components?.[`${id("pump-101/motor")}#current`]?.quality === "Good" ? r : undefined;
      }, 30_000);
      expect(typeof motor.components[`${id("pump-101/motor")}#current`].value).toBe("number");
      const [flow, tank] = await eventually(async () => {
        const r = await read([id("pump-101/flow"), id("tank-201/status")], 0);
        const level = r[1]?.components?.[`${id("tank-201/status")}#level`];
        return r[0]?.quality === "Good" && level?.quality === "Good" ? r : undefined;
      });
      expect(typeof flow.value).toBe("number");
      expect(tank.components[`${id("tank-201/status")}#level`].quality).toBe("Good");

      // Write-back round trip: i3xd publishes the command, the station applies it and reports it back.
      await eventually(async () => (await read([id("pump-101/speed-setpoint")]))[0]?.quality === "Good");
      const put = await postJson(
        url,
        "/v1/objects/value",
        { updates: [{ elementId: id("pump-101/speed-setpoint"), value: { value: 65 } }] },
        { method: "PUT" },
      );
      expect(put.body.results[0].success).toBe(true);
      const history = await eventually(async () => {
        const r = await postJson(url, "/v1/objects/history", {
          elementIds: [id("pump-101/speed-setpoint")],
          startTime: "2000-01-01T00:00:00Z",
          endTime: "2100-01-01T00:00:00Z",
        });
        const values = r.body.results[0].result.values;
        // The stored write, then the station's own report of the same value.
        return values.filter((v: any) => v.value === 65).length >= 2 ? values : undefined;
      });
      expect(history.at(-1).value).toBe(65);
    } finally {
      publisher.kill("SIGINT");
      await server?.close();
    }
  }, 60_000);
});
