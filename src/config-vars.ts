/**
 * Reading one environment variable each: trimmed, empty meaning unset, and a `ConfigError` naming the
 * variable when the value is wrong. Apart from `config.ts` so the telemetry settings can use the same
 * rules without importing the whole configuration (which imports them).
 */

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export function envValue(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === "" ? undefined : trimmed;
}

export function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = envValue(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function boolVar(env: Env, name: string): boolean | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  const v = raw.toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

export function enumVar<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = envValue(env, name);
  if (raw === undefined) return fallback;
  const v = raw.toLowerCase() as T;
  if (!allowed.includes(v))
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`);
  return v;
}

export function stringVar(env: Env, name: string, fallback: string): string;
export function stringVar(env: Env, name: string): string | undefined;
export function stringVar(env: Env, name: string, fallback?: string): string | undefined {
  return envValue(env, name) ?? fallback;
}

/** A duration: a number of seconds, or with a unit: `500ms`, `30s`, `1m`, `2h`. Returns milliseconds. */
export function durationMsVar(
  env: Env,
  name: string,
  fallbackMs: number,
  minMs: number,
  maxMs: number,
): number {
  const raw = envValue(env, name);
  if (raw === undefined) return fallbackMs;
  const m = /^(\d+)\s*(ms|s|m|h)?$/i.exec(raw);
  if (!m) throw new ConfigError(`${name} must be a duration such as 60, 30s, 1m or 500ms, got "${raw}"`);
  const unit = (m[2] ?? "s").toLowerCase();
  const n = Number(m[1]) * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000);
  if (n < minMs || n > maxMs)
    throw new ConfigError(`${name} must be between ${minMs} ms and ${maxMs} ms, got ${n} ms`);
  return n;
}
