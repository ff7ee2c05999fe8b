import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { readRepoFile } from "./files.js";

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments and the parser directive left out. */
function instructions(text: string): Instruction[] {
  const joined = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(" ") };
    });
}

const dockerfile = instructions(readRepoFile("Dockerfile"));
const stages = dockerfile.filter((i) => i.keyword === "FROM");
const runtime = dockerfile.slice(dockerfile.lastIndexOf(stages[stages.length - 1]));
const args = (keyword: string, within = dockerfile) =>
  within.filter((i) => i.keyword === keyword).map((i) => i.args);

/** The health check's command, exactly as Docker would run it (exec form: a JSON list). */
function healthCommand(): string[] {
  const [check] = args("HEALTHCHECK", runtime);
  const json = check.slice(check.indexOf("CMD ") + 4);
  return JSON.parse(json) as string[];
}

function runCommand(argv: string[], env: Record<string, string>): Promise<number | null> {
  const child = spawn(argv[0] === "node" ? process.execPath : argv[0], argv.slice(1), {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: "ignore",
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve(code)));
}

describe("Dockerfile", () => {
  it("builds in stages from the Node.js slim image of .node-version, pinned by version", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const nodeVersion = readRepoFile(".node-version").trim();
    for (const from of stages) expect(from.args).toMatch(new RegExp(`^node:${nodeVersion}-[a-z]+-slim\\b`));
  });

  it("installs the runtime's dependencies with npm ci --omit=dev and compiles in another stage", () => {
    const installs = args("RUN").filter((r) => r.includes("npm ci"));
    expect(installs.some((r) => r.includes("--omit=dev"))).toBe(true);
    expect(args("RUN").some((r) => r.includes("npm run build"))).toBe(true);
    // The last stage copies what the others made; it installs and compiles nothing itself.
    expect(args("RUN", runtime).some((r) => r.includes("npm"))).toBe(false);
    expect(args("COPY", runtime).filter((c) => c.startsWith("--from=")).length).toBe(2);
  });

  it("runs as a non-root user with /data as a volume, the port exposed and SIGTERM to stop", () => {
    const [user] = args("USER", runtime);
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user.split(":")[0]);
    expect(args("VOLUME", runtime).join(" ")).toContain("/data");
    expect(args("ENV", runtime).join(" ")).toMatch(/I3XD_DATA_DIR=\/data\b/);
    const port = /I3XD_PORT=(\d+)/.exec(args("ENV", runtime).join(" "))?.[1];
    expect(args("EXPOSE", runtime)).toContain(port);
    expect(args("STOPSIGNAL", runtime)).toEqual(["SIGTERM"]);
  });

  it("bakes in no secrets: no key, password, token, DSN or store URL in ENV or ARG", () => {
    const settings = [...args("ENV"), ...args("ARG")].join(" ");
    expect(settings).not.toMatch(/KEY|PASSWORD|TOKEN|SECRET|DSN|STORE_URL/i);
  });

  it("its .dockerignore lets in only the build's inputs", () => {
    const ignore = readRepoFile(".dockerignore")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    const allowed = ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, ""));
    // Every COPY from the build context names an allowed path.
    for (const copy of args("COPY").filter((c) => !c.startsWith("--from="))) {
      const sources = copy.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(allowed, source).toContain(source.replace(/\/$/, ""));
    }
  });

  describe("HEALTHCHECK", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer();
    });
    afterAll(() => server?.close());

    it("asks /health/ready with node (no curl in the slim image) and passes against a ready server", async () => {
      const command = healthCommand();
      expect(command[0]).toBe("node");
      expect(command.join(" ")).toContain("/health/ready");
      expect(await runCommand(command, { I3XD_PORT: new URL(server.url).port })).toBe(0);
    });

    it("fails when nothing answers on the port", async () => {
      const port = new URL(server.url).port;
      await server.close();
      expect(await runCommand(healthCommand(), { I3XD_PORT: port })).toBe(1);
    });
  });
});
