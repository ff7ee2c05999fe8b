import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every metric the server exports, in one place. Names, types and labels are a public interface
 * (observability contract §3): dashboards and alert rules in ops/ depend on them.
 */
export const registry = new Registry();

export const entityRequests = new Counter({
  name: "entity_requests_total",
  help: "API requests by method, route template and status code",
  labelNames: ["method", "endpoint", "status"] as const,
  registers: [registry],
});

export const requestDuration = new Histogram({
  name: "request_duration_seconds",
  help: "Request latency by method and route template",
  labelNames: ["method", "endpoint"] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const dataPointsWritten = new Counter({
  name: "data_points_written_total",
  help: "VQT points stored (value and history writes, ingestion) by object type",
  labelNames: ["entity_type"] as const,
  registers: [registry],
});

export const activeDatabaseConnections = new Gauge({
  name: "active_database_connections",
  help: "Open store connections (SQLite handles or PostgreSQL pool clients)",
  registers: [registry],
});

/** Counts a PostgreSQL pool reports; `waiting` is queries queued for a free client. */
export interface PoolCounts {
  total: number;
  idle: number;
  waiting: number;
}

let poolCounts: (() => PoolCounts) | undefined;

/**
 * Makes `database_pool_connections` read this pool at scrape time. Returns the function that detaches it
 * again (a closed store); with no pool attached (SQLite) the metric has no series.
 */
export function attachDatabasePool(counts: () => PoolCounts): () => void {
  poolCounts = counts;
  return () => {
    if (poolCounts !== counts) return;
    poolCounts = undefined;
    databasePoolConnections.reset();
  };
}

export const databasePoolConnections = new Gauge({
  name: "database_pool_connections",
  help: "PostgreSQL pool by state: total clients, idle clients, and queries waiting for a client",
  labelNames: ["state"] as const,
  registers: [registry],
  collect() {
    if (poolCounts === undefined) return;
    const c = poolCounts();
    this.set({ state: "total" }, c.total);
    this.set({ state: "idle" }, c.idle);
    this.set({ state: "waiting" }, c.waiting);
  },
});

/** Look-ups of one cache type; the cache adds to these, `/metrics` reads them at scrape time. */
export interface CacheLookups {
  hits: number;
  misses: number;
}

// Plain numbers on the hot path: a labelled prom-client `inc` hashes its labels on every call, and the
// cache counts every read. A type has series from its first cache on, so a hit ratio is always defined.
const cacheLookups = new Map<string, CacheLookups>();

/** The counts of `cacheType`, shared by every cache of that type in the process. */
export function cacheLookupsOf(cacheType: string): CacheLookups {
  let counts = cacheLookups.get(cacheType);
  if (counts === undefined) {
    counts = { hits: 0, misses: 0 };
    cacheLookups.set(cacheType, counts);
  }
  return counts;
}

export const cacheHits = new Counter({
  name: "cache_hits_total",
  help: "Cache look-ups answered from the cache",
  labelNames: ["cache_type"] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [cache_type, c] of cacheLookups) this.inc({ cache_type }, c.hits);
  },
});

export const cacheMisses = new Counter({
  name: "cache_misses_total",
  help: "Cache look-ups that went to the store",
  labelNames: ["cache_type"] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [cache_type, c] of cacheLookups) this.inc({ cache_type }, c.misses);
  },
});

export const subscriptionsActive = new Gauge({
  name: "subscriptions_active",
  help: "Subscriptions currently held by this process",
  registers: [registry],
});

export const sseStreamsOpen = new Gauge({
  name: "sse_streams_open",
  help: "Open SSE subscription streams",
  registers: [registry],
});

export const subscriptionQueuedUpdates = new Gauge({
  name: "subscription_queued_updates",
  help: "Updates waiting in subscription queues (not yet delivered or acknowledged)",
  registers: [registry],
});

export const subscriptionDroppedUpdates = new Counter({
  name: "subscription_dropped_updates_total",
  help: "Updates dropped because a subscription queue was full",
  registers: [registry],
});

export const corsRejected = new Counter({
  name: "cors_rejected_total",
  help: "Requests to /v1 from a browser page on an origin I3XD_CORS_ORIGINS does not list, by kind",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const telemetryDropped = new Counter({
  name: "telemetry_dropped_total",
  help: "Log lines, spans or error reports dropped because a sink was slow or down",
  labelNames: ["sink"] as const,
  registers: [registry],
});

export const telemetryBuffered = new Gauge({
  name: "telemetry_buffered",
  help: "Log lines waiting in a shipping sink's bounded buffer (Loki, Logstash)",
  labelNames: ["sink"] as const,
  registers: [registry],
});

export const telemetryShippingHeap = new Gauge({
  name: "telemetry_shipping_heap_bytes",
  help: "Heap used by the log shipping worker thread (not part of the process heap metrics)",
  registers: [registry],
});

export const subscriptionQueuedBytes = new Gauge({
  name: "subscription_queued_bytes",
  help: "Estimated bytes of the updates waiting in subscription queues (their JSON size)",
  registers: [registry],
});

export const sseStreamsClosed = new Counter({
  name: "sse_streams_closed_total",
  help: "SSE streams the server closed, by reason (stalled: the client read nothing for I3XD_SSE_STALL_TIMEOUT)",
  labelNames: ["reason"] as const,
  registers: [registry],
});

export const limitRejections = new Counter({
  name: "limit_rejections_total",
  help: "Requests refused with 429 because a per-key, per-address or process-wide share was used up, by limit",
  labelNames: ["limit"] as const,
  registers: [registry],
});

export const httpConnectionsOpen = new Gauge({
  name: "http_connections_open",
  help: "Open client connections to the API listener",
  registers: [registry],
});

export const httpConnectionsRejected = new Counter({
  name: "http_connections_rejected_total",
  help: "Connections closed on arrival, by reason (max_connections, per_address)",
  labelNames: ["reason"] as const,
  registers: [registry],
});

export const httpParserErrors = new Counter({
  name: "http_parser_errors_total",
  help: "Requests Node's HTTP parser rejected before routing (400 malformed, 408 timeout, 431 headers too large)",
  labelNames: ["code"] as const,
  registers: [registry],
});

export const storeSizeBytes = new Gauge({
  name: "store_size_bytes",
  help: "Bytes the store takes: SQLite database file and its WAL; PostgreSQL pg_database_size",
  labelNames: ["store"] as const,
  registers: [registry],
});

export const storeSizeLimitBytes = new Gauge({
  name: "store_size_limit_bytes",
  help: "Bytes the store can grow to: I3XD_STORE_MAX_BYTES or its size plus the free disk, the lower (SQLite)",
  labelNames: ["store"] as const,
  registers: [registry],
});

export const storeHistoryRowsEstimate = new Gauge({
  name: "store_history_rows_estimate",
  help: "History rows held by the store (an estimate from the database's statistics)",
  registers: [registry],
});

export const storeRetentionDeleted = new Counter({
  name: "store_retention_deleted_total",
  help: "History rows removed by retention (reason retention) or to stay below I3XD_STORE_MAX_BYTES (size_bound)",
  labelNames: ["reason"] as const,
  registers: [registry],
});

export const storeWriteRejected = new Counter({
  name: "store_write_rejected_total",
  help: "VQT points not stored for lack of space (507), by reason: size_bound or disk_full",
  labelNames: ["reason"] as const,
  registers: [registry],
});

// Every reason has a series from the start, so rate() and the dashboard show 0 rather than nothing.
for (const reason of ["retention", "size_bound"]) storeRetentionDeleted.inc({ reason }, 0);
for (const reason of ["size_bound", "disk_full"]) storeWriteRejected.inc({ reason }, 0);

export const connectorUp = new Gauge({
  name: "connector_up",
  help: "1 while the connector reaches its source, 0 while it does not; no series on a standby replica",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const connectorMessages = new Counter({
  name: "connector_messages_total",
  help: "Source messages of a connector by outcome: received, stored, unmatched, invalid, dropped",
  labelNames: ["connector", "outcome"] as const,
  registers: [registry],
});

export const connectorIngestLag = new Histogram({
  name: "connector_ingest_lag_seconds",
  help: "Time from a point's source timestamp to its being stored",
  labelNames: ["connector"] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

export const connectorReconnects = new Counter({
  name: "connector_reconnects_total",
  help: "Times a connector reconnected to its source",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const connectorQueuedPoints = new Gauge({
  name: "connector_queue_points",
  help: "Points waiting in a connector's queue for the write path",
  labelNames: ["connector"] as const,
  registers: [registry],
});

export const connectorQueuedBytes = new Gauge({
  name: "connector_queue_bytes",
  help: "Source bytes of the points waiting in a connector's queue",
  labelNames: ["connector"] as const,
  registers: [registry],
});
