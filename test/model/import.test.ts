import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { demoPlantModel } from "../../src/demo/demo-plant.js";
import { validateModel } from "../../src/model/validate.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite.js";
import { contractModel } from "../store/contract.js";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Runs the real CLI, as an operator would. */
function cli(args: string[], dataDir: string) {
  return spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "src/cli.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, I3XD_DATA_DIR: dataDir, LOG_LEVEL: "silent" },
    encoding: "utf8",
    timeout: 60_000,
  });
}

describe("model validation", () => {
  it("accepts the demo plant the server ships", () => {
    expect(() => validateModel(demoPlantModel(new Date()), "demo plant")).not.toThrow();
  });
});

describe("i3xd import", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-import-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function objectsInStore(): Promise<string[]> {
    const store = new SqliteStore(path.join(dir, "data", "i3xd.sqlite"));
    await store.init();
    try {
      return (await store.listObjects()).map((o) => o.elementId).sort();
    } finally {
      await store.close();
    }
  }

  it("loads a valid model and prints what it loaded", async () => {
    const file = path.join(dir, "plant.json");
    fs.writeFileSync(file, JSON.stringify(contractModel()));
    const run = cli(["import", file], path.join(dir, "data"));
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/4 objects/);
    expect(await objectsInStore()).toEqual(["pump", "pump-temp", "site", "tank"]);
  });

  it("names the file and every offending element, and changes nothing on failure", async () => {
    const good = path.join(dir, "good.json");
    fs.writeFileSync(good, JSON.stringify(contractModel()));
    expect(cli(["import", good], path.join(dir, "data")).status).toBe(0);

    const bad = contractModel();
    bad.objects.push({ elementId: "pump-9", displayName: "Pump 9", typeElementId: "NoSuchType" });
    bad.objects.push({ elementId: " padded", displayName: "x", typeElementId: "pump-type" });
    bad.objects.push({ elementId: "new-ok", displayName: "Fine on its own", typeElementId: "pump-type" });
    bad.relationships?.push({ sourceId: "pump", relationshipType: "Feeds", targetId: "tank" });
    bad.values?.push({
      elementId: "pump",
      value: null,
      quality: "Good",
      timestamp: "2026-01-01T00:00:00+01:00",
    });
    bad.values?.push({ elementId: "pump", value: { speed: "fast" }, timestamp: "2026-01-01T00:00:00Z" });
    const file = path.join(dir, "bad.json");
    fs.writeFileSync(file, JSON.stringify(bad));
    const run = cli(["import", file], path.join(dir, "data"));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain(file);
    expect(run.stderr).toMatch(
      /objects\[4\] \(pump-9\): typeElementId "NoSuchType" is not a known object type/,
    );
    expect(run.stderr).toMatch(/objects\[5\].*leading or trailing white space/);
    expect(run.stderr).toMatch(/relationships\[2\].*"Feeds" is not a registered relationship type/);
    expect(run.stderr).toMatch(/timestamp .* is not RFC 3339 UTC/);
    expect(run.stderr).toMatch(/null value needs quality Bad or GoodNoData/);
    expect(run.stderr).toMatch(
      /values\[2\] \(pump\): Value does not match the object type schema: value.speed must be of type number/,
    );
    expect(await objectsInStore()).toEqual(["pump", "pump-temp", "site", "tank"]);
  });

  it("rejects invalid JSON and prototype-polluting keys with the file named", () => {
    const file = path.join(dir, "broken.json");
    fs.writeFileSync(file, '{"namespaces": [');
    const run = cli(["import", file], path.join(dir, "data"));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/broken\.json.*not valid JSON/s);

    const evil = path.join(dir, "evil.json");
    fs.writeFileSync(
      evil,
      JSON.stringify(contractModel()).replace('"objects":[', '"objects":[{"__proto__":{"x":1}},'),
    );
    const run2 = cli(["import", evil], path.join(dir, "data"));
    expect(run2.status).not.toBe(0);
    expect(run2.stderr).toMatch(/__proto__/);
  });

  it("accepts a second file that extends what the store already holds", () => {
    const base = path.join(dir, "base.json");
    fs.writeFileSync(base, JSON.stringify(contractModel()));
    expect(cli(["import", base], path.join(dir, "data")).status).toBe(0);
    const extra = {
      namespaces: [],
      objectTypes: [],
      relationshipTypes: [],
      objects: [{ elementId: "pump-2", displayName: "Pump 2", typeElementId: "pump-type", parentId: "site" }],
      relationships: [{ sourceId: "pump-2", relationshipType: "SuppliesTo", targetId: "tank" }],
    };
    const file = path.join(dir, "extra.json");
    fs.writeFileSync(file, JSON.stringify(extra));
    const run = cli(["import", file], path.join(dir, "data"));
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});
