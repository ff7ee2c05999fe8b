import type { AddressInfo } from "node:net";
import { Server as TlsServer } from "node:tls";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app.js";
import type { Config } from "./config.js";
import { type ConnectorEntry, loadConnectorsFile } from "./connectors/framework/config-file.js";
import { ConnectorFramework } from "./connectors/framework/framework.js";
import { connectorKinds } from "./connectors/kinds.js";
import { demoPlantModel } from "./demo/demo-plant.js";
import { DEMO_VALUE_IDS } from "./demo/plant-physics.js";
import { Simulator } from "./demo/simulator.js";
import { type ChangeFeed, LocalChangeFeed } from "./domain/changes.js";
import { type LeaderElection, SoleLeader } from "./domain/leadership.js";
import { configureLogging, flushLogs, getLogger } from "./observability/logger.js";
import { startTelemetry } from "./observability/telemetry.js";
import { openKeyring } from "./security/authentication.js";
import { type MetricsListener, startMetricsListener } from "./security/metrics-listener.js";
import { createServices, type Services } from "./services/index.js";
import { CachedStore } from "./store/decorators/cached.js";
import { traceCache, traceStore } from "./store/decorators/traced.js";
import { openStore } from "./store/index.js";
import { PgChangeFeed } from "./store/postgres/pg-change-feed.js";
import { PgConnectorRelay } from "./store/postgres/pg-connector-relay.js";
import { PgLeaderElection } from "./store/postgres/pg-leadership.js";
import { PostgresStore } from "./store/postgres/postgres.js";
import type { Store } from "./store/store.js";
import { SERVER_VERSION } from "./version.js";

export interface RunningServer {
  app: FastifyInstance;
  /** Base URL the server listens on, e.g. `http://127.0.0.1:8080` (no `/v1`). */
  url: string;
  store: Store;
  services: Services;
  /** Base URL of the separate metrics listener, when I3XD_METRICS_PORT is set. */
  metricsUrl?: string;
  /** Graceful shutdown: stop the simulator, stop accepting, finish in-flight requests, close the store. */
  close(reason?: string): Promise<void>;
}

const log = getLogger("i3xd.server");

export async function startServer(config: Config): Promise<RunningServer> {
  // API keys first: a server that must authenticate but has none stops here, before touching any data.
  const keyring = openKeyring(config);
  // The connectors file too: an invalid one stops start-up before any data is touched.
  const connectorEntries: ConnectorEntry[] =
    config.connectorsFile === undefined
      ? []
      : loadConnectorsFile(config.connectorsFile, process.env, connectorKinds);
  // Before logging (its shipping sinks are log destinations) and before the store and app are built (the
  // tracing decorators and hooks are added only when tracing is on).
  const telemetry = await startTelemetry(config.telemetry);
  configureLogging(config, telemetry.logSinks);
  const opened = await openStore(config);
  const backing = traceStore(opened);
  const cache = config.cacheMaxEntries > 0 ? new CachedStore(backing, config.cacheMaxEntries) : undefined;
  const store: Store = cache === undefined ? backing : traceCache(cache);
  let feed: PgChangeFeed | undefined;
  let simulator: Simulator | undefined;
  let app: FastifyInstance | undefined;
  let metrics: MetricsListener | undefined;
  let connectors: ConnectorFramework | undefined;
  try {
    // On PostgreSQL other replicas may write too: their changes reach this one's cache and subscriptions.
    if (opened instanceof PostgresStore) feed = await PgChangeFeed.start({ reader: opened, cache });
    const changes: ChangeFeed = feed ?? new LocalChangeFeed();
    const services = createServices(config, store, changes, cache);

    // Unset I3XD_DEMO: a fresh store gets the demo plant, and a store that holds it keeps it running
    // across restarts (the simulator resumes from the stored values).
    const demoPresent = await hasDemoPlant(store);
    const demo = config.demo ?? (demoPresent || (await store.isEmpty()));
    if (demo) {
      if (!demoPresent) await loadDemoPlant(store);
      simulator = new Simulator(services.writes, config.simulatorIntervalMs);
    }

    if (connectorEntries.length > 0) {
      // With replicas on one PostgreSQL database exactly one runs each connector; alone, this one does.
      let election: LeaderElection = new SoleLeader();
      let relay: PgConnectorRelay | undefined;
      if (opened instanceof PostgresStore) {
        election = new PgLeaderElection(opened.connectionString);
        relay = new PgConnectorRelay(opened.connectionString);
        await relay.start();
      }
      connectors = new ConnectorFramework({
        entries: connectorEntries,
        kinds: connectorKinds,
        services,
        election,
        relay,
        dataDir: config.dataDir,
      });
      services.connectors.port = connectors;
    }

    app = await buildApp({ config, store, services, keyring });
    await app.listen({ host: config.host, port: config.port });
    if (config.metrics && config.metricsPort !== undefined)
      metrics = await startMetricsListener({ config, store, services });
    const url = baseUrl(app);
    simulator?.start();
    connectors?.start();
    const features = [
      demo && "demo-plant",
      config.cacheMaxEntries > 0 && `cache(${config.cacheMaxEntries})`,
      config.logFile && "log-file",
      config.testFaults && "test-faults",
      config.tlsCert && "tls",
      metrics && "metrics-port",
      feed && "change-notifications",
      connectors && `connectors(${connectors.size})`,
    ].filter((f): f is string => typeof f === "string");
    log.info(
      { version: SERVER_VERSION, store: store.kind, address: url, metrics_address: metrics?.url, features },
      "i3xd started",
    );

    let closing: Promise<void> | undefined;
    const running: RunningServer = {
      app,
      url,
      store,
      services,
      metricsUrl: metrics?.url,
      close(reason = "shutdown") {
        closing ??= shutdown(reason);
        return closing;
      },
    };
    const shutdown = async (reason: string) => {
      log.info({ reason }, "Shutting down");
      // Let a tick that is writing finish before the store closes under it.
      await simulator?.stop();
      await running.app.close();
      // After the API (no write-back in flight), before the store: what the queues hold is still written.
      await connectors?.stop();
      await metrics?.close();
      await feed?.close();
      await store.close();
      log.info({ reason }, "Stopped");
      // Spans, error reports and shipped lines still queued, all side by side within one
      // TELEMETRY_FLUSH_TIMEOUT_MS. Telemetry first: closing the shipping stream delivers its lines itself,
      // so the log flush does not wait a deadline of its own on a stuck shipping back-end.
      await Promise.all([telemetry.close(), flushLogs()]);
    };
    return running;
  } catch (err) {
    await simulator?.stop();
    await connectors?.stop().catch(() => {});
    await app?.close().catch(() => {});
    await metrics?.close().catch(() => {});
    await feed?.close().catch(() => {});
    await store.close().catch(() => {});
    await telemetry.close().catch(() => {});
    throw err;
  }
}

/**
 * True when every demo object is already stored: a restart must not seed a second day of history over the
 * one the simulator has been writing.
 */
async function hasDemoPlant(store: Store): Promise<boolean> {
  return (await store.getObjects(DEMO_VALUE_IDS)).size === DEMO_VALUE_IDS.length;
}

async function loadDemoPlant(store: Store): Promise<void> {
  const model = demoPlantModel(new Date());
  await store.importModel(model);
  log.info({ objects: model.objects.length }, "Demo plant loaded");
}

function baseUrl(app: FastifyInstance): string {
  const addr = app.server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return `${app.server instanceof TlsServer ? "https" : "http"}://${host}:${addr.port}`;
}
