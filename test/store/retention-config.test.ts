import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { ConfigError } from "../../src/config-vars.js";

const HOUR_MS = 3_600_000;

describe("retention and size settings", () => {
  it("reads a retention, per-type periods, a size bound and the upkeep interval", () => {
    const config = loadConfig({
      I3XD_HISTORY_RETENTION: "30d",
      I3XD_HISTORY_RETENTION_BY_TYPE: "temperature-type=7d, flow-rate-type = 36h",
      I3XD_STORE_MAX_BYTES: "512m",
      I3XD_STORE_UPKEEP_INTERVAL: "30s",
    });
    expect(config.historyRetentionMs).toBe(30 * 24 * HOUR_MS);
    expect([...config.historyRetentionByType]).toEqual([
      ["temperature-type", 7 * 24 * HOUR_MS],
      ["flow-rate-type", 36 * HOUR_MS],
    ]);
    expect(config.storeMaxBytes).toBe(512 * 1024 * 1024);
    expect(config.storeUpkeepIntervalMs).toBe(30_000);
  });

  it("keeps everything, unbounded, by default", () => {
    const config = loadConfig({});
    expect(config.historyRetentionMs).toBeUndefined();
    expect(config.historyRetentionByType.size).toBe(0);
    expect(config.storeMaxBytes).toBeUndefined();
    expect(config.storeUpkeepIntervalMs).toBe(60_000);
  });

  it.each([
    [{ I3XD_HISTORY_RETENTION_BY_TYPE: "temperature-type" }, "I3XD_HISTORY_RETENTION_BY_TYPE"],
    [{ I3XD_HISTORY_RETENTION_BY_TYPE: "=7d" }, "I3XD_HISTORY_RETENTION_BY_TYPE"],
    [{ I3XD_HISTORY_RETENTION_BY_TYPE: "a=7d,a=8d" }, "twice"],
    [{ I3XD_HISTORY_RETENTION_BY_TYPE: "a=7 days" }, "36h, 30d or 12w"],
    [{ I3XD_STORE_MAX_BYTES: "100k" }, "I3XD_STORE_MAX_BYTES"],
    [{ I3XD_STORE_MAX_BYTES: "1g", I3XD_STORE_URL: "postgres://u@h/db" }, "SQLite file only"],
  ])("refuses %j naming the variable", (env, words) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(words);
  });
});
