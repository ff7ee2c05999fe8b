// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { makeTempDir, startTestServer } from "../helpers/server.js";
import { freePort, killChildren, runCli, serveChild, until } from "./child.js";
import { bearer, writeTestKeys } from "./keys.js";

const temp = makeTempDir("i3xd-defaults-");
afterAll(() => {
  killChildren();
  temp.remove();
});

const dir = (name: string) => path.join(temp.dir, name);

describe("secure defaults", () => {
  it.each([
    ["a non-loopback address", { I3XD_HOST: "0.0.0.0" }, "non-loopback address 0.0.0.0"],
    ["NODE_ENV=production", { NODE_ENV: "production" }, "NODE_ENV=production"],
    ["I3XD_AUTH=required", { I3XD_AUTH: "required" }, "I3XD_AUTH=required"],
  ])(
    "refuses to start on %s without keys, with one clear message, before touching data",
    async (_, env, reason) => {
      const dataDir = dir(`refused-${reason.replace(/\W+/g, "-")}`);
      const run = runCli(["serve"], { I3XD_PORT: "0", I3XD_DATA_DIR: dataDir, ...env });
      expect(await run.exited).toBe(1);
      const lines = run
        .stderr()
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("i3xd:"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(reason);
      expect(lines[0]).toContain("no API keys are configured");
      expect(lines[0]).toContain("i3xd keys create");
      expect(run.stdout()).not.toContain("i3xd started");
      expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
    },
    60_000,
  );

  it("runs open on loopback in development without keys, and says so in its start-up log", async () => {
    const server = await serveChild({ I3XD_DATA_DIR: dir("open") });
    try {
      expect((await getJson(server.url, "/v1/namespaces")).status).toBe(200);
      const warning = server
        .stdout()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .find((l) => l.logger === "i3xd.security");
      expect(warning).toMatchObject({ level: "WARNING" });
      expect(warning.message).toContain("Authentication is off");
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  }, 120_000);

  it("refuses an explicit keys file that does not exist, and an invalid I3XD_API_KEYS", async () => {
    const missing = runCli(["serve"], {
      I3XD_PORT: "0",
      I3XD_DATA_DIR: dir("missing"),
      I3XD_KEYS_FILE: dir("nope/keys.json"),
    });
    expect(await missing.exited).toBe(1);
    expect(missing.stderr()).toContain("I3XD_KEYS_FILE");
    const invalid = runCli(["serve"], {
      I3XD_PORT: "0",
      I3XD_DATA_DIR: dir("invalid"),
      I3XD_API_KEYS: "[{}]",
    });
    expect(await invalid.exited).toBe(1);
    expect(invalid.stderr()).toContain("I3XD_API_KEYS");
  }, 120_000);
});

describe("i3xd keys", () => {
  it("creates a key shown once, stores only its hash, lists and revokes it; a public server requires it", async () => {
    const dataDir = dir("keys");
    const create = runCli(["keys", "create", "--name", "historian", "--scope", "read,write"], {
      I3XD_DATA_DIR: dataDir,
    });
    expect(await create.exited, create.stderr()).toBe(0);
    const token = create.stdout().trim();
    expect(token).toMatch(/^i3xd_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(create.stderr()).toContain("shown only now");
    const file = path.join(dataDir, "keys.json");
    const stored = readFileSync(file, "utf8");
    expect(stored).not.toContain(token.slice(18));
    expect(JSON.parse(stored).keys[0]).toMatchObject({ name: "historian", scopes: ["read", "write"] });

    const readOnly = runCli(
      ["keys", "create", "--name", "dashboard", "--scope", "read", "--prefix", "pump-101"],
      {
        I3XD_DATA_DIR: dataDir,
      },
    );
    expect(await readOnly.exited).toBe(0);
    const duplicate = runCli(["keys", "create", "--name", "dashboard", "--scope", "read"], {
      I3XD_DATA_DIR: dataDir,
    });
    expect(await duplicate.exited).toBe(1);
    const badScope = runCli(["keys", "create", "--name", "x", "--scope", "admin"], {
      I3XD_DATA_DIR: dataDir,
    });
    expect(await badScope.exited).toBe(1);
    expect(badScope.stderr()).toContain("unknown scope");

    const list = runCli(["keys", "list"], { I3XD_DATA_DIR: dataDir });
    expect(await list.exited).toBe(0);
    expect(list.stdout()).toMatch(/historian\s+read,write\s+\*/);
    expect(list.stdout()).toMatch(/dashboard\s+read\s+pump-101/);
    expect(list.stdout()).not.toContain("scrypt");

    // Listening on every interface: keys are required, the one created above works.
    const port = await freePort("0.0.0.0");
    const run = runCli(["serve"], {
      I3XD_HOST: "0.0.0.0",
      I3XD_PORT: String(port),
      I3XD_DATA_DIR: dataDir,
      I3XD_SIMULATOR_INTERVAL_MS: "3600000",
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await until("the server to answer", async () =>
        (await getJson(url, "/v1/info")).status === 200 ? true : undefined,
      );
      const denied = await getJson(url, "/v1/namespaces");
      expect(denied.status).toBe(401);
      expect(denied.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expect((await getJson(url, "/v1/namespaces", bearer(token))).status).toBe(200);

      const revoke = runCli(["keys", "revoke", "historian"], { I3XD_DATA_DIR: dataDir });
      expect(await revoke.exited).toBe(0);
      expect(revoke.stderr()).toContain("Revoked");
      await until("the revoked key to be refused", async () =>
        (await getJson(url, "/v1/namespaces", bearer(token))).status === 401 ? true : undefined,
      );
      const after = runCli(["keys", "list"], { I3XD_DATA_DIR: dataDir });
      await after.exited;
      expect(after.stdout()).not.toContain("historian");
    } finally {
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
    }
  }, 120_000);

  it("prints an entry for I3XD_API_KEYS with --env and writes no file", async () => {
    const dataDir = dir("env-keys");
    const create = runCli(["keys", "create", "--name", "ci", "--scope", "read", "--env"], {
      I3XD_DATA_DIR: dataDir,
    });
    expect(await create.exited).toBe(0);
    const token = create.stdout().trim();
    const entry = create
      .stderr()
      .split("\n")
      .find((l) => l.startsWith("{"));
    expect(entry).toBeDefined();
    expect(existsSync(path.join(dataDir, "keys.json"))).toBe(false);
    const server = await startTestServer({ I3XD_AUTH: "required", I3XD_API_KEYS: `[${entry}]` });
    try {
      expect((await getJson(server.url, "/v1/namespaces")).status).toBe(401);
      expect((await getJson(server.url, "/v1/namespaces", bearer(token))).status).toBe(200);
    } finally {
      await server.close();
    }
  }, 120_000);
});

describe("/metrics protection", () => {
  it("requires I3XD_METRICS_TOKEN when set (API keys do not replace it)", async () => {
    const { keys } = await writeTestKeys(dir(""), { scraper: { scopes: ["read"] } });
    const metricsToken = "metrics-token-0123456789";
    const server = await startTestServer({
      I3XD_METRICS_TOKEN: metricsToken,
      I3XD_KEYS_FILE: path.join(temp.dir, "keys.json"),
    });
    try {
      const none = await getJson(server.url, "/metrics");
      expect(none.status).toBe(401);
      expect(none.body.responseDetail.status).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers: bearer(keys.scraper) })).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers: bearer("metrics-token-wrong") })).status).toBe(
        401,
      );
      const ok = await fetch(`${server.url}/metrics`, { headers: bearer(metricsToken) });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("entity_requests_total");
      // Probes and /info stay open.
      expect((await getJson(server.url, "/health/ready")).status).toBe(200);
      expect((await getJson(server.url, "/v1/info")).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("serves /metrics on I3XD_METRICS_PORT only, with its own token when set", async () => {
    const server = await startTestServer({
      I3XD_METRICS_PORT: "0",
      I3XD_METRICS_TOKEN: "another-metrics-token",
    });
    try {
      expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await getJson(server.url, "/metrics")).status).toBe(404);
      const denied = await getJson(server.metricsUrl as string, "/metrics");
      expect(denied.status).toBe(401);
      expect(denied.body.success).toBe(false);
      const res = await fetch(`${server.metricsUrl}/metrics`, { headers: bearer("another-metrics-token") });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("entity_requests_total");
      const other = await postJson(server.metricsUrl as string, "/v1/objects/value", {
        elementIds: ["pump-101"],
      });
      expect(other.status).toBe(401);
    } finally {
      await server.close();
    }
  });
});
