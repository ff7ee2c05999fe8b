// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { makeTempDir } from "../helpers/server.js";
import { freePort, killChildren, runCli, startHeldRequest, until } from "../security/child.js";

const temp = makeTempDir("i3xd-cli-");

afterAll(() => {
  killChildren();
  temp.remove();
});

describe("i3xd CLI", () => {
  it("prints help and version", async () => {
    const help = runCli(["--help"]);
    expect(await help.exited).toBe(0);
    expect(help.stdout()).toContain("serve");
    expect(help.stdout()).toContain("import <file>");
    const version = runCli(["--version"]);
    expect(await version.exited).toBe(0);
    expect(version.stdout().trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("refuses an invalid setting with one line naming the variable and exit code 2", async () => {
    const run = runCli(["serve"], { I3XD_PORT: "eighty" });
    expect(await run.exited).toBe(2);
    const lines = run.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("I3XD_PORT");
  });

  it("imports a model file and reports a broken one with a non-zero exit", async () => {
    const dataDir = path.join(temp.dir, "import");
    const good = path.join(temp.dir, "good.json");
    writeFileSync(
      good,
      JSON.stringify({
        namespaces: [{ uri: "urn:test:ns", displayName: "Test" }],
        objectTypes: [
          {
            elementId: "thing-type",
            displayName: "Thing",
            namespaceUri: "urn:test:ns",
            schema: { type: "number" },
          },
        ],
        relationshipTypes: [
          {
            elementId: "HasParent",
            displayName: "HasParent",
            namespaceUri: "urn:test:ns",
            relationshipId: "HasParent",
            reverseOf: "HasChildren",
          },
          {
            elementId: "HasChildren",
            displayName: "HasChildren",
            namespaceUri: "urn:test:ns",
            relationshipId: "HasChildren",
            reverseOf: "HasParent",
          },
        ],
        objects: [
          { elementId: "thing-1", displayName: "Thing 1", typeElementId: "thing-type", parentId: null },
        ],
      }),
    );
    const ok = runCli(["import", good], { I3XD_DATA_DIR: dataDir });
    expect(await ok.exited, ok.stderr()).toBe(0);
    expect(ok.stdout()).toContain("good.json");

    const bad = path.join(temp.dir, "bad.json");
    writeFileSync(
      bad,
      JSON.stringify({
        namespaces: [],
        objectTypes: [],
        relationshipTypes: [],
        objects: [{ elementId: "x" }],
      }),
    );
    const failed = runCli(["import", bad], { I3XD_DATA_DIR: dataDir });
    expect(await failed.exited).not.toBe(0);
    expect(failed.stderr()).toContain("bad.json");
  });

  it("serves the demo plant and on SIGTERM finishes in-flight requests, then exits 0", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const run = runCli(["serve"], {
      I3XD_HOST: "127.0.0.1",
      I3XD_PORT: String(port),
      I3XD_DATA_DIR: path.join(temp.dir, "serve"),
      I3XD_SIMULATOR_INTERVAL_MS: "3600000",
      LOG_LEVEL: "info",
    });
    await until("the server to answer", async () =>
      (await getJson(url, "/v1/info")).status === 200 ? true : undefined,
    );

    const pump = await postJson(url, "/v1/objects/list", {
      elementIds: ["pump-101", "tank-201", "sensor-001"],
    });
    expect(pump.body.success).toBe(true);
    const value = await postJson(url, "/v1/objects/value", { elementIds: ["pump-101"], maxDepth: 0 });
    expect(value.body.results[0].result.components["pump-101-measurements"]).toBeDefined();

    // A request the server has accepted (it answered 100 Continue) but whose body is not sent yet.
    const held = await startHeldRequest(
      `${url}/v1/objects/list`,
      "POST",
      JSON.stringify({ elementIds: ["pump-101"] }),
    );

    run.child.kill("SIGTERM");
    await until("shutdown to begin", () => (run.stdout().includes("Shutting down") ? true : undefined));
    held.finish();

    const answer = await held.answer;
    expect(answer.status).toBe(200);
    expect(answer.body.results[0].result.elementId).toBe("pump-101");
    expect(await run.exited).toBe(0);
    await expect(getJson(url, "/v1/info")).rejects.toThrow();
  });
});
