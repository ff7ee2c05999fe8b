import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/server.js";
import { childEnv, ROOT } from "../security/child.js";
import { TEST_KIND } from "./test-source.js";

// An invalid connectors file stops `i3xd serve` before it touches any data: exit code 2 and one message
// naming each connector and field at fault. Run as the CLI runs, in a child process, with the test-only
// source kind registered (cli-child.ts).

const dir = makeTempDir("i3xd-connectors-file-");
afterAll(() => dir.remove());

async function serveWith(yaml: string, env: Record<string, string> = {}) {
  const file = path.join(dir.dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, ["--import", "tsx", "test/connectors/cli-child.ts", "serve"], {
    cwd: ROOT,
    env: childEnv({
      I3XD_CONNECTORS_FILE: file,
      I3XD_DATA_DIR: dir.dir,
      I3XD_PORT: "0",
      LOG_LEVEL: "silent",
      ...env,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, stderr, file };
}

describe("I3XD_CONNECTORS_FILE validation", () => {
  it("names the connector and the field of every problem, and exits with 2", async () => {
    const { code, stderr, file } = await serveWith(`connectors:
  - name: line-1
    kind: ${TEST_KIND}
    onLoss: sometimes
    prefix: line1
  - name: line-2
    kind: ${TEST_KIND}
    prefix: line2
    elements: many
    colour: blue
  - name: line-3
    kind: no-such-kind
  - name: line-1
    kind: ${TEST_KIND}
    prefix: again
`);
    expect(code).toBe(2);
    expect(stderr).toContain(`i3xd: configuration error: I3XD_CONNECTORS_FILE ${file}:`);
    expect(stderr).toContain(
      'connector "line-1" (connectors[0]): field "onLoss" must be one of "bad", "uncertain"',
    );
    expect(stderr).toContain('connector "line-2" (connectors[1]): field "elements" must be integer');
    expect(stderr).toContain(
      'connector "line-2" (connectors[1]): field "colour" is not a known setting of this kind',
    );
    expect(stderr).toContain(
      `connector "line-3" (connectors[2]): field "kind" "no-such-kind" is not a known kind`,
    );
    expect(stderr).toContain(
      'connector "line-1" (connectors[3]): field "name" "line-1" is used by an earlier connector',
    );
  });

  it("refuses a variable reference whose variable is not set", async () => {
    const { code, stderr } = await serveWith(`connectors:
  - name: secret
    kind: ${TEST_KIND}
    prefix: s
    password: \${I3XD_TEST_UNSET_PASSWORD}
`);
    expect(code).toBe(2);
    expect(stderr).toContain(
      'connector "secret" (connectors[0]): field "password" refers to the environment variable I3XD_TEST_UNSET_PASSWORD, which is not set',
    );
  });

  it("refuses a file that is not YAML, or has no connectors list, or an entry without a kind", async () => {
    const broken = await serveWith("connectors: [ { name: x\n");
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain("not valid YAML or JSON");

    const noList = await serveWith(JSON.stringify({ sources: [] }));
    expect(noList.code).toBe(2);
    expect(noList.stderr).toContain("must be an object with a `connectors` list");

    const noKind = await serveWith(JSON.stringify({ connectors: [{ name: "lonely" }] }));
    expect(noKind.code).toBe(2);
    expect(noKind.stderr).toContain('connector "lonely" (connectors[0]): field "kind" is required');
  });

  it("names a file it cannot read", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "serve"], {
      cwd: ROOT,
      env: childEnv({
        I3XD_CONNECTORS_FILE: path.join(dir.dir, "missing.yaml"),
        I3XD_DATA_DIR: dir.dir,
        LOG_LEVEL: "silent",
      }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    expect(await new Promise((resolve) => child.on("exit", resolve))).toBe(2);
    expect(stderr).toContain("missing.yaml");
    expect(stderr).toContain("cannot read the file");
  });
});

describe("broker settings of both MQTT-based kinds", () => {
  it("refuses a reconnect backoff that starts above its cap, naming the connector and the field", async () => {
    for (const kind of ["mqtt", "sparkplug"]) {
      const rules = kind === "mqtt" ? `\n    rules: [{ topic: "plant/{tag}" }]` : "";
      const { code, stderr } = await serveWith(`connectors:
  - name: slow-${kind}
    kind: ${kind}
    url: mqtt://127.0.0.1:1883
    reconnect: { minMs: 5000, maxMs: 100 }${rules}
`);
      expect(code).toBe(2);
      expect(stderr).toContain(
        `connector "slow-${kind}" (connectors[0]): field "reconnect.minMs" must not exceed reconnect.maxMs`,
      );
    }
  });
});
