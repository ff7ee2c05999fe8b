import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  boolVar,
  ConfigError,
  durationMsVar,
  type Env,
  enumVar,
  envValue,
  intVar,
  stringVar,
} from "./config-vars.js";
import { loadTelemetryConfig, type TelemetryConfig } from "./observability/telemetry-config.js";

/**
 * The whole configuration, read once from the environment and validated. Every variable is documented in
 * docs/configuration.md's table; an invalid value stops start-up with one message naming the variable.
 */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** `postgres://…` selects the PostgreSQL store; unset: the embedded SQLite file under `dataDir`. */
  storeUrl: string | undefined;
  /** Most PostgreSQL connections in the pool. */
  pgPoolMax: number;
  /** History older than this is deleted by the store's upkeep (both stores), ms; unset: kept forever. */
  historyRetentionMs: number | undefined;
  /** Per object type (elementId) retention overriding `historyRetentionMs` for that type's objects, ms. */
  historyRetentionByType: ReadonlyMap<string, number>;
  /** SQLite: the most bytes the database file may take; history goes oldest first before it is reached. */
  storeMaxBytes: number | undefined;
  /** How often the store's upkeep runs: retention, the size bound, store metrics. */
  storeUpkeepIntervalMs: number;
  /** Worker threads reading SQLite history ranges off the event loop (started on demand); 0: none. */
  historyReadThreads: number;
  /** Load the demo plant and run its simulator. `undefined`: when the store is empty or already holds it. */
  demo: boolean | undefined;
  logLevel: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
  /** `json` (one object per line) or `pretty` (human-readable, for development). */
  logFormat: "json" | "pretty";
  /** Write log lines to this file, rotated by size, instead of stdout. */
  logFile: string | undefined;
  /** Bytes per log file before rotation. */
  logFileMaxSize: number;
  /** Most log files that exist at any moment, the one being written included (at least 2). */
  logFileCount: number;
  /** Add `module`, `function` and `line` of the logging call to every line. */
  logCaller: boolean;
  /** Entries per in-process cache (objects, types, current values); 0 turns caching off. */
  cacheMaxEntries: number;
  /** Prometheus metrics: request hooks and `GET /metrics`. Off: neither exists (the route answers 404). */
  metrics: boolean;
  /** Largest accepted request body, bytes. */
  bodyLimit: number;
  /** Most ids in one bulk request. */
  maxBulkItems: number;
  /** Most history points returned per element in one response (more gives 206). */
  maxHistoryPoints: number;
  /**
   * Most bytes (JSON) of history one `POST /objects/history` reads through to connectors' sources, all
   * elements together (more gives 206): bounds the source's answers and their hand-over between replicas.
   */
  historyReadThroughMaxBytes: number;
  /** Most composition levels followed for maxDepth 0 (deeper gives 206). */
  maxCompositionDepth: number;
  /** Demo simulator tick, milliseconds. */
  simulatorIntervalMs: number;
  /** Registers `POST /v1/_test/fault` (answers 500) for tests; refused when NODE_ENV=production. */
  testFaults: boolean;
  /** Longest wait for in-flight requests on SIGTERM/SIGINT before the process exits anyway, ms. */
  shutdownTimeoutMs: number;
  /** Most updates one subscription holds (pending plus unacknowledged); the oldest go first beyond it. */
  subscriptionQueueMax: number;
  /** A subscription with no open stream and no sync for this long is deleted. */
  subscriptionTtlSeconds: number;
  /** Most subscriptions one clientId may hold at once. */
  maxSubscriptionsPerClient: number;
  /** Most subscriptions the process holds at once. */
  maxSubscriptions: number;
  /** Interval of SSE keep-alive comments on open streams, seconds. */
  sseHeartbeatSeconds: number;
  /** Traces (OTLP), error reports (Sentry), log shipping (Loki, Logstash); each off unless configured. */
  telemetry: TelemetryConfig;
  /**
   * API keys are required (non-loopback address, NODE_ENV=production or I3XD_AUTH=required); the server
   * then refuses to start without keys. Otherwise keys are enforced only when some exist at start-up.
   */
  authRequired: boolean;
  /** Why authentication is required, for the start-up log and the refusal message. */
  authRequiredReason: string | undefined;
  /** JSON file of hashed API keys, written by `i3xd keys create` (default `<dataDir>/keys.json`). */
  keysFile: string;
  /** I3XD_KEYS_FILE was given: the file must then exist. */
  keysFileExplicit: boolean;
  /** Hashed API key entries from the environment (a JSON list), next to the keys file. */
  apiKeys: string | undefined;
  /** Bearer token that `GET /metrics` requires, when set. */
  metricsToken: string | undefined;
  /** Serve `/metrics` on this port (its own listener) instead of the API port. */
  metricsPort: number | undefined;
  /** Address of the metrics listener. */
  metricsHost: string;
  /** PEM certificate (chain) and private key files; both set turns on HTTPS (TLS 1.2 or newer). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Largest accepted request header block, bytes (larger: 431). */
  maxHeaderSize: number;
  /** Longest time a client may take to send a whole request (headers and body), ms. */
  requestTimeoutMs: number;
  /** Most concurrently open SSE streams per API key (per client address when running open). */
  maxStreamsPerKey: number;
  /** Requests per window per API key (per client address when running open); 0 turns the limit off. */
  rateLimitMax: number;
  /** The rate limit's window, ms. */
  rateLimitWindowMs: number;
  /** Deepest array/object nesting accepted in a JSON request body (deeper: 400). */
  maxJsonDepth: number;
  /**
   * Origins whose browser pages may call `/v1` (CORS), as browsers send them (`http://localhost:5173`);
   * `"*"`: every origin (refused while authentication is on); unset: none.
   */
  corsOrigins: readonly string[] | "*" | undefined;
  /** Shares of the process-wide limits held by one key or address (src/security/quotas.ts, connections.ts). */
  limits: LimitsConfig;
  /** YAML or JSON file listing the connectors to run (docs/connectors.md); read when the server starts. */
  connectorsFile: string | undefined;
}

/** Per-key and per-address shares, byte bounds and connection limits (docs/security.md lists them all). */
export interface LimitsConfig {
  /** Estimated bytes one subscription's queue holds (pending plus unacknowledged); the oldest go first. */
  subscriptionQueueMaxBytes: number;
  /** Estimated bytes every subscription queue together holds. */
  subscriptionQueuesMaxBytes: number;
  /** A stream whose client has read nothing for this long is closed, ms. */
  sseStallTimeoutMs: number;
  /** Most subscriptions one API key (or client address when running open) holds at once. */
  maxSubscriptionsPerKey: number;
  /** Most SSE streams open at once from one client address, whatever the key. */
  maxStreamsPerAddress: number;
  /** Most SSE streams open at once in the process. */
  maxStreams: number;
  /** Most open connections; beyond it new ones are closed at once. */
  maxConnections: number;
  /** Most open connections from one client address. */
  maxConnectionsPerAddress: number;
  /** The process's file descriptor limit the connection defaults were derived from. */
  fdLimit: number;
  /** Longest time a client may take to send the request headers, ms. */
  headersTimeoutMs: number;
  /** How long an idle keep-alive connection stays open, ms. */
  keepAliveTimeoutMs: number;
}

/** A PostgreSQL connection URL (`postgres://` or `postgresql://`); the value is never echoed (it may hold a password). */
export function storeUrlVar(env: Env, name: string): string | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL such as postgres://user@host:5432/i3xd`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`${name} must start with postgres:// or postgresql://, got ${url.protocol}//…`);
  }
  return raw;
}

/** A retention period with a unit: `36h`, `30d`, `12w`. Returns milliseconds; unset means keep forever. */
export function retentionVar(env: Env, name: string): number | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  const m = /^(\d+)\s*(h|d|w)$/i.exec(raw);
  if (!m) throw new ConfigError(`${name} must be a period such as 36h, 30d or 12w, got "${raw}"`);
  const hours = Number(m[1]) * ({ h: 1, d: 24, w: 168 } as const)[m[2].toLowerCase() as "h" | "d" | "w"];
  if (hours < 1 || hours > 100 * 365 * 24) {
    throw new ConfigError(`${name} must be between 1h and 100 years, got "${raw}"`);
  }
  return hours * 3_600_000;
}

/**
 * Origins, separated by commas or spaces: `scheme://host[:port]` each, no path, as a browser's `Origin`
 * header spells them (a trailing `/`, upper-case host or default port is normalised to that form), or a
 * lone `*`.
 */
export function corsOriginsVar(env: Env, name: string): readonly string[] | "*" | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  const entries = raw.split(/[\s,]+/).filter((e) => e !== "");
  if (entries.length === 0) throw new ConfigError(`${name} must list at least one origin, got "${raw}"`);
  if (entries.includes("*")) {
    if (entries.length > 1)
      throw new ConfigError(`${name}: "*" allows every origin and must be the only entry, got "${raw}"`);
    return "*";
  }
  const origins = new Set<string>();
  for (const entry of entries) {
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    // The pattern rules out paths, queries, fragments and user info; the parser anything that is no host.
    if (url === undefined || !/^https?:\/\/[^/?#@]+\/?$/i.test(entry)) {
      throw new ConfigError(
        `${name} takes origins such as http://localhost:5173 or https://explorer.example.com ` +
          `(scheme, host and optional port; no path), got "${entry}"`,
      );
    }
    origins.add(url.origin);
  }
  return [...origins];
}

/**
 * Retention per object type: `typeId=period` pairs separated by commas, e.g. `fast-sensor-type=36h,
 * batch-type=90d` (periods as in `retentionVar`). Unset: no type has its own.
 */
export function retentionByTypeVar(env: Env, name: string): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  const raw = envValue(env, name);
  if (raw === undefined) return out;
  for (const pair of raw.split(",")) {
    const at = pair.lastIndexOf("=");
    const type = pair.slice(0, at).trim();
    const period = pair.slice(at + 1).trim();
    if (at < 0 || type === "" || period === "") {
      throw new ConfigError(
        `${name} must list typeId=period pairs such as pump-type=36h, got "${pair.trim()}"`,
      );
    }
    if (out.has(type)) throw new ConfigError(`${name} names type "${type}" twice`);
    out.set(type, retentionVar({ [name]: period }, name) as number);
  }
  return out;
}

/** `I3XD_STORE_MAX_BYTES`: SQLite only, so with `I3XD_STORE_URL` it is an error rather than a silent no-op. */
function storeMaxBytesVar(env: Env): number | undefined {
  if (envValue(env, "I3XD_STORE_MAX_BYTES") === undefined) return undefined;
  if (envValue(env, "I3XD_STORE_URL") !== undefined) {
    throw new ConfigError(
      "I3XD_STORE_MAX_BYTES bounds the SQLite file only; with I3XD_STORE_URL (PostgreSQL) leave it unset",
    );
  }
  return byteSizeVar(env, "I3XD_STORE_MAX_BYTES", 0, 1024 * 1024, Number.MAX_SAFE_INTEGER);
}

/** True for addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return (
    h === "localhost" ||
    h === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(h) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(h)
  );
}

/** A size in bytes, optionally with a binary unit: `10485760`, `512k`, `10m`, `1g` (also `10MiB`, `10MB`). */
export function byteSizeVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = envValue(env, name);
  if (raw === undefined) return fallback;
  const m = /^(\d+)\s*(?:([kmg])i?)?b?$/i.exec(raw);
  if (!m) throw new ConfigError(`${name} must be a size such as 10485760, 512k or 10m, got "${raw}"`);
  const unit = m[2]?.toLowerCase();
  const n = Number(m[1]) * (unit === "g" ? 1024 ** 3 : unit === "m" ? 1024 ** 2 : unit === "k" ? 1024 : 1);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max} bytes, got ${n}`);
  return n;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export function loadConfig(env: Env = process.env): Config {
  const host = stringVar(env, "I3XD_HOST", "127.0.0.1");
  if (/\s/.test(host)) throw new ConfigError(`I3XD_HOST must be a host name or address, got "${host}"`);
  const testFaults = boolVar(env, "I3XD_TEST_FAULTS") ?? false;
  if (testFaults && envValue(env, "NODE_ENV") === "production") {
    throw new ConfigError(
      "I3XD_TEST_FAULTS must not be set when NODE_ENV=production (it adds a failing endpoint)",
    );
  }
  return {
    host,
    port: intVar(env, "I3XD_PORT", 8080, 0, 65535),
    dataDir: path.resolve(stringVar(env, "I3XD_DATA_DIR", "./data")),
    storeUrl: storeUrlVar(env, "I3XD_STORE_URL"),
    pgPoolMax: intVar(env, "I3XD_PG_POOL_MAX", 10, 1, 1000),
    historyRetentionMs: retentionVar(env, "I3XD_HISTORY_RETENTION"),
    historyRetentionByType: retentionByTypeVar(env, "I3XD_HISTORY_RETENTION_BY_TYPE"),
    storeMaxBytes: storeMaxBytesVar(env),
    storeUpkeepIntervalMs: durationMsVar(env, "I3XD_STORE_UPKEEP_INTERVAL", 60_000, 1000, 86_400_000),
    historyReadThreads: intVar(
      env,
      "I3XD_HISTORY_READ_THREADS",
      Math.min(4, os.availableParallelism()),
      0,
      64,
    ),
    demo: boolVar(env, "I3XD_DEMO"),
    logLevel: enumVar(env, "LOG_LEVEL", LOG_LEVELS, "info"),
    logFormat: enumVar(env, "LOG_FORMAT", ["json", "pretty"] as const, "json"),
    logFile: stringVar(env, "LOG_FILE"),
    logFileMaxSize: byteSizeVar(env, "LOG_FILE_MAX_SIZE", 10 * 1024 * 1024, 1024, 1024 ** 4),
    logFileCount: intVar(env, "LOG_FILE_COUNT", 10, 2, 10_000),
    logCaller: boolVar(env, "LOG_CALLER") ?? false,
    cacheMaxEntries: intVar(env, "I3XD_CACHE_MAX_ENTRIES", 10_000, 0, 10_000_000),
    metrics: boolVar(env, "I3XD_METRICS") ?? true,
    bodyLimit: intVar(env, "I3XD_BODY_LIMIT", 4 * 1024 * 1024, 1024, 512 * 1024 * 1024),
    maxBulkItems: intVar(env, "I3XD_MAX_BULK_ITEMS", 1000, 1, 1_000_000),
    maxHistoryPoints: intVar(env, "I3XD_MAX_HISTORY_POINTS", 100_000, 1, 10_000_000),
    historyReadThroughMaxBytes: byteSizeVar(
      env,
      "I3XD_HISTORY_READ_THROUGH_MAX_BYTES",
      8 * 1024 * 1024,
      16 * 1024,
      256 * 1024 * 1024,
    ),
    maxCompositionDepth: intVar(env, "I3XD_MAX_COMPOSITION_DEPTH", 32, 1, 1000),
    simulatorIntervalMs: intVar(env, "I3XD_SIMULATOR_INTERVAL_MS", 1000, 10, 3_600_000),
    testFaults,
    shutdownTimeoutMs: intVar(env, "I3XD_SHUTDOWN_TIMEOUT_MS", 25_000, 100, 600_000),
    subscriptionQueueMax: intVar(env, "I3XD_SUBSCRIPTION_QUEUE_MAX", 10_000, 1, 10_000_000),
    subscriptionTtlSeconds: intVar(env, "I3XD_SUBSCRIPTION_TTL_SECONDS", 600, 1, 30 * 86_400),
    maxSubscriptionsPerClient: intVar(env, "I3XD_MAX_SUBSCRIPTIONS_PER_CLIENT", 100, 1, 1_000_000),
    maxSubscriptions: intVar(env, "I3XD_MAX_SUBSCRIPTIONS", 10_000, 1, 10_000_000),
    sseHeartbeatSeconds: intVar(env, "I3XD_SSE_HEARTBEAT_SECONDS", 15, 1, 3600),
    telemetry: loadTelemetryConfig(env),
    ...loadSecurityConfig(env, host),
    limits: loadLimitsConfig(env),
    connectorsFile: connectorsFileVar(env),
  };
}

function connectorsFileVar(env: Env): string | undefined {
  const file = stringVar(env, "I3XD_CONNECTORS_FILE");
  return file === undefined ? undefined : path.resolve(file);
}

/** The soft limit on open files (Linux `/proc/self/limits`); 1024, the usual default, where unknown. */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (m) return m[1] === "unlimited" ? 1_048_576 : Number(m[1]);
  } catch {
    // Not Linux: fall through to the common default.
  }
  return 1024;
}

/** Descriptors kept free of connections: the store's files and pool, log files, telemetry sockets, workers. */
const FD_RESERVE = 128;

function loadLimitsConfig(env: Env, fdLimit = openFileLimit()): LimitsConfig {
  const maxConnections = intVar(
    env,
    "I3XD_MAX_CONNECTIONS",
    Math.max(32, Math.min(Math.floor(fdLimit * 0.8), fdLimit - FD_RESERVE)),
    1,
    10_000_000,
  );
  const queuesMaxBytes = byteSizeVar(
    env,
    "I3XD_SUBSCRIPTION_QUEUES_MAX_BYTES",
    256 * 1024 ** 2,
    1024,
    1024 ** 4,
  );
  return {
    // A sixteenth of the process budget: a handful of stalled subscriptions cannot take it all.
    subscriptionQueueMaxBytes: byteSizeVar(
      env,
      "I3XD_SUBSCRIPTION_QUEUE_MAX_BYTES",
      Math.max(1024, Math.floor(queuesMaxBytes / 16)),
      1024,
      1024 ** 4,
    ),
    subscriptionQueuesMaxBytes: queuesMaxBytes,
    sseStallTimeoutMs: durationMsVar(env, "I3XD_SSE_STALL_TIMEOUT", 60_000, 100, 86_400_000),
    maxSubscriptionsPerKey: intVar(env, "I3XD_MAX_SUBSCRIPTIONS_PER_KEY", 1000, 1, 10_000_000),
    maxStreamsPerAddress: intVar(env, "I3XD_MAX_STREAMS_PER_ADDRESS", 100, 1, 1_000_000),
    maxStreams: intVar(env, "I3XD_MAX_STREAMS", 5000, 1, 10_000_000),
    maxConnections,
    maxConnectionsPerAddress: intVar(
      env,
      "I3XD_MAX_CONNECTIONS_PER_ADDRESS",
      Math.max(8, Math.floor(maxConnections / 4)),
      1,
      10_000_000,
    ),
    fdLimit,
    headersTimeoutMs: durationMsVar(env, "I3XD_HEADERS_TIMEOUT", 10_000, 100, 3_600_000),
    keepAliveTimeoutMs: durationMsVar(env, "I3XD_KEEP_ALIVE_TIMEOUT", 5000, 100, 3_600_000),
  };
}

type SecurityConfig = Pick<
  Config,
  | "authRequired"
  | "authRequiredReason"
  | "keysFile"
  | "keysFileExplicit"
  | "apiKeys"
  | "metricsToken"
  | "metricsPort"
  | "metricsHost"
  | "tlsCert"
  | "tlsKey"
  | "maxHeaderSize"
  | "requestTimeoutMs"
  | "maxStreamsPerKey"
  | "rateLimitMax"
  | "rateLimitWindowMs"
  | "maxJsonDepth"
  | "corsOrigins"
>;

function loadSecurityConfig(env: Env, host: string): SecurityConfig {
  const auth = enumVar(env, "I3XD_AUTH", ["auto", "required"] as const, "auto");
  const authRequiredReason =
    auth === "required"
      ? "I3XD_AUTH=required"
      : envValue(env, "NODE_ENV") === "production"
        ? "NODE_ENV=production"
        : !isLoopbackHost(host)
          ? `listening on the non-loopback address ${host}`
          : undefined;
  const tlsCert = stringVar(env, "I3XD_TLS_CERT");
  const tlsKey = stringVar(env, "I3XD_TLS_KEY");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      "I3XD_TLS_CERT and I3XD_TLS_KEY must be set together (PEM certificate and key files)",
    );
  }
  const metricsToken = stringVar(env, "I3XD_METRICS_TOKEN");
  if (metricsToken !== undefined && metricsToken.length < 16) {
    throw new ConfigError("I3XD_METRICS_TOKEN must be at least 16 characters long");
  }
  const metricsPortRaw = envValue(env, "I3XD_METRICS_PORT");
  const keysFile = stringVar(env, "I3XD_KEYS_FILE");
  const dataDir = path.resolve(stringVar(env, "I3XD_DATA_DIR", "./data"));
  return {
    authRequired: authRequiredReason !== undefined,
    authRequiredReason,
    keysFile: keysFile === undefined ? path.join(dataDir, "keys.json") : path.resolve(keysFile),
    keysFileExplicit: keysFile !== undefined,
    apiKeys: stringVar(env, "I3XD_API_KEYS"),
    metricsToken,
    metricsPort: metricsPortRaw === undefined ? undefined : intVar(env, "I3XD_METRICS_PORT", 0, 0, 65535),
    metricsHost: stringVar(env, "I3XD_METRICS_HOST", host),
    tlsCert: tlsCert === undefined ? undefined : path.resolve(tlsCert),
    tlsKey: tlsKey === undefined ? undefined : path.resolve(tlsKey),
    maxHeaderSize: byteSizeVar(env, "I3XD_MAX_HEADER_SIZE", 16 * 1024, 1024, 1024 * 1024),
    requestTimeoutMs: intVar(env, "I3XD_REQUEST_TIMEOUT_MS", 60_000, 1000, 3_600_000),
    maxStreamsPerKey: intVar(env, "I3XD_MAX_STREAMS_PER_KEY", 500, 1, 1_000_000),
    // Generous by default and only where keys are required, so local benchmarks are never throttled.
    rateLimitMax: intVar(
      env,
      "I3XD_RATE_LIMIT_MAX",
      authRequiredReason !== undefined ? 60_000 : 0,
      0,
      100_000_000,
    ),
    rateLimitWindowMs: durationMsVar(env, "I3XD_RATE_LIMIT_WINDOW", 60_000, 1000, 86_400_000),
    maxJsonDepth: intVar(env, "I3XD_MAX_JSON_DEPTH", 64, 2, 1000),
    corsOrigins: corsOriginsVar(env, "I3XD_CORS_ORIGINS"),
  };
}
