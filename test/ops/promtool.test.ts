import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ALERTS_FILE, OPS, run, toolsFor, writeFile } from "./tools.js";

const tools = toolsFor("promtool", "amtool");
const RULES_DIR = path.join(OPS, "prometheus");
const AM_CONFIG = path.join(OPS, "alertmanager/alertmanager.yml");

(tools.available ? describe : describe.skip)("Prometheus and Alertmanager files pass their own tools", () => {
  const scratch = mkdtempSync(path.join(tmpdir(), "i3xd-promtool-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("promtool check rules ops/prometheus/alerts.yml", async () => {
    const r = await run(tools.require("promtool"), ["check", "rules", "ops/prometheus/alerts.yml"]);
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("promtool test rules ops/prometheus/alerts.test.yml", async () => {
    const r = await run(tools.require("promtool"), ["test", "rules", "ops/prometheus/alerts.test.yml"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("SUCCESS");
  });

  it("the rule tests catch a wrong threshold (they are not vacuous)", async () => {
    copyFileSync(path.join(RULES_DIR, "alerts.test.yml"), path.join(scratch, "alerts.test.yml"));
    // An absolute-rate style mistake: the ratio threshold raised from 5% to 7%.
    const broken = readFileSync(ALERTS_FILE, "utf8").replace(") > 0.05", ") > 0.07");
    writeFile(scratch, "alerts.yml", broken);
    const r = await run(tools.require("promtool"), ["test", "rules", "alerts.test.yml"], { cwd: scratch });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain("alertname: HighErrorRate");
  });

  it("promtool check config ops/prometheus/prometheus.yml (rule file resolved next to it)", async () => {
    // Run from elsewhere: rule_files must resolve relative to the config file, not the working directory.
    const r = await run(
      tools.require("promtool"),
      ["check", "config", path.join(RULES_DIR, "prometheus.yml")],
      {
        cwd: scratch,
      },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: 1 rule files found/);
    expect(r.stdout + r.stderr).toContain("is valid prometheus config file syntax");
  });

  it("amtool check-config ops/alertmanager/alertmanager.yml", async () => {
    const r = await run(tools.require("amtool"), ["check-config", AM_CONFIG]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain("SUCCESS");
  });

  it.each([
    ["critical", "pager"],
    ["warning", "chat"],
  ])("routes severity=%s to the %s receiver", async (severity, receiver) => {
    const r = await run(tools.require("amtool"), [
      "config",
      "routes",
      "test",
      `--config.file=${AM_CONFIG}`,
      "alertname=HighErrorRate",
      "instance=i3xd-1:8080",
      `severity=${severity}`,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(receiver);
  });
});
