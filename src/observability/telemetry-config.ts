import { ConfigError, intVar, stringVar } from "../config-vars.js";
import { SERVER_NAME, SERVER_VERSION } from "../version.js";

type Env = Record<string, string | undefined>;

/** Where traces, error reports and shipped log lines go. Every part is off unless its variables are set. */
export interface TelemetryConfig {
  /** OTLP trace export; the SDK itself reads the standard `OTEL_*` variables. */
  tracing?: { protocol: "http/protobuf" | "http/json" };
  sentry?: {
    dsn: string;
    environment?: string;
    release: string;
    tracesSampleRate: number;
  };
  loki?: {
    /** Full push URL (`…/loki/api/v1/push`). */
    pushUrl: string;
    username?: string;
    password?: string;
    tenant?: string;
  };
  logstash?: { host: string; port: number };
  /** Most log lines one shipping sink holds while its back-end is slow or down; beyond it lines are dropped. */
  bufferMax: number;
  /** Longest wait at shutdown for queued spans, error reports and log lines to go out, ms. */
  flushTimeoutMs: number;
}

const OTLP_PROTOCOLS = ["http/protobuf", "http/json"] as const;

export function loadTelemetryConfig(env: Env): TelemetryConfig {
  const config: TelemetryConfig = {
    bufferMax: intVar(env, "TELEMETRY_BUFFER_MAX", 10_000, 100, 1_000_000),
    flushTimeoutMs: intVar(env, "TELEMETRY_FLUSH_TIMEOUT_MS", 5_000, 0, 120_000),
  };

  if (tracingRequested(env)) {
    const protocol = (
      stringVar(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ??
      stringVar(env, "OTEL_EXPORTER_OTLP_PROTOCOL") ??
      "http/protobuf"
    ).toLowerCase();
    if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
      throw new ConfigError(
        `OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (OTLP over HTTP, usually port 4318), got "${protocol}"`,
      );
    }
    config.tracing = { protocol: protocol as (typeof OTLP_PROTOCOLS)[number] };
  }

  const dsn = stringVar(env, "SENTRY_DSN");
  if (dsn !== undefined) {
    if (!isHttpUrl(dsn)) throw new ConfigError(`SENTRY_DSN must be a Sentry DSN URL, got "${dsn}"`);
    config.sentry = {
      dsn,
      environment: stringVar(env, "SENTRY_ENVIRONMENT"),
      release: stringVar(env, "SENTRY_RELEASE", `${SERVER_NAME}@${SERVER_VERSION}`),
      tracesSampleRate: rateVar(env, "SENTRY_TRACES_SAMPLE_RATE", 0.1),
    };
  }

  const lokiUrl = stringVar(env, "LOKI_URL");
  if (lokiUrl !== undefined) {
    if (!isHttpUrl(lokiUrl)) throw new ConfigError(`LOKI_URL must be an http(s) URL, got "${lokiUrl}"`);
    const username = stringVar(env, "LOKI_USERNAME");
    const password = stringVar(env, "LOKI_PASSWORD");
    if ((username === undefined) !== (password === undefined)) {
      throw new ConfigError("LOKI_USERNAME and LOKI_PASSWORD must be set together (basic auth)");
    }
    config.loki = {
      pushUrl: lokiPushUrl(lokiUrl),
      username,
      password,
      tenant: stringVar(env, "LOKI_TENANT"),
    };
  }

  const logstashHost = stringVar(env, "LOGSTASH_HOST");
  if (logstashHost !== undefined) {
    config.logstash = { host: logstashHost, port: intVar(env, "LOGSTASH_PORT", 5000, 1, 65535) };
  } else if (stringVar(env, "LOGSTASH_PORT") !== undefined) {
    throw new ConfigError("LOGSTASH_PORT is set but LOGSTASH_HOST is not");
  }

  return config;
}

/**
 * Tracing is on when an OTLP endpoint is configured, as the OpenTelemetry specification describes it, unless
 * the SDK or the trace exporter is switched off by the standard variables.
 */
function tracingRequested(env: Env): boolean {
  const endpoint =
    stringVar(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? stringVar(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (endpoint === undefined) return false;
  if (stringVar(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return false;
  const exporters = (stringVar(env, "OTEL_TRACES_EXPORTER") ?? "otlp").split(",").map((s) => s.trim());
  if (exporters.includes("none")) return false;
  if (!isHttpUrl(endpoint)) throw new ConfigError(`OTLP endpoint must be an http(s) URL, got "${endpoint}"`);
  return true;
}

/** Accepts the Loki base URL (`http://loki:3100`) or the full push URL. */
function lokiPushUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, "");
  return /\/loki\/api\/v1\/push$/.test(trimmed) ? trimmed : `${trimmed}/loki/api/v1/push`;
}

function rateVar(env: Env, name: string, fallback: number): number {
  const raw = stringVar(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d*\.?\d+(e-?\d+)?$/i.test(raw) || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new ConfigError(`${name} must be a number from 0 to 1, got "${raw}"`);
  }
  return n;
}

function isHttpUrl(value: string): boolean {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
