import type { ConnectorRelay } from "../../domain/connector-relay.js";
import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../../domain/history-read.js";
import type { LeaderElection } from "../../domain/leadership.js";
import { getLogger } from "../../observability/logger.js";
import type {
  ConnectorPort,
  ConnectorStatus,
  ConnectorWriteItem,
  ConnectorWriteResult,
} from "../../services/connectors.js";
import type { Services } from "../../services/index.js";
import type { ConnectorEntry } from "./config-file.js";
import type { KindRegistry } from "./registry.js";
import { ConnectorRunner, type RunnerTiming } from "./runner.js";

const log = getLogger("i3xd.connectors");

export interface FrameworkOptions {
  entries: readonly ConnectorEntry[];
  kinds: KindRegistry;
  services: Pick<Services, "writes" | "modelWrites">;
  election: LeaderElection;
  /**
   * Hands write-backs and history read-throughs to the replica that runs the connector (PostgreSQL);
   * without it write-backs are refused and history is i3xd's own.
   */
  relay?: ConnectorRelay;
  dataDir: string;
  timing?: RunnerTiming;
}

/** How long a write-back handed to another replica may take, the source's own answer included. */
const FORWARD_TIMEOUT_MS = 10_000;

/** How long a history read handed to another replica may take: the source may answer in many pages. */
const HISTORY_FORWARD_TIMEOUT_MS = 30_000;

/**
 * Every configured connector of the process, each in its runner. It is the services' `ConnectorPort`:
 * readiness reads the connectors' states through it and write-back reaches their sources through it.
 */
export class ConnectorFramework implements ConnectorPort {
  private readonly runners = new Map<string, ConnectorRunner>();

  constructor(private readonly options: FrameworkOptions) {
    for (const entry of options.entries) {
      const kind = options.kinds.get(entry.settings.kind);
      // The file was checked against the same registry; a kind gone since is a programming error.
      if (kind === undefined) throw new Error(`connector kind "${entry.settings.kind}" is not registered`);
      this.runners.set(
        entry.settings.name,
        new ConnectorRunner(entry, kind, {
          writes: options.services.writes,
          modelWrites: options.services.modelWrites,
          election: options.election,
          dataDir: options.dataDir,
          timing: options.timing,
        }),
      );
    }
  }

  get size(): number {
    return this.runners.size;
  }

  /** Each connector starts once this replica holds its leadership; returns at once. */
  start(): void {
    const leading = (connector: string) => {
      const runner = this.runners.get(connector);
      return runner?.leading ? runner : undefined;
    };
    this.options.relay?.serve({
      runs: (connector) => leading(connector) !== undefined,
      write: (connector, items) => leading(connector)?.writeBack(items),
      readHistory: (connector, items, range) => leading(connector)?.readHistory(items, range),
    });
    for (const runner of this.runners.values()) runner.start();
    if (this.runners.size > 0) log.info({ connectors: [...this.runners.keys()] }, "Connectors configured");
  }

  /** Stops every connector and writes what their queues still hold; then releases the leadership. */
  async stop(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    await this.options.relay?.close();
    await this.options.election.close();
  }

  statuses(): ConnectorStatus[] {
    return [...this.runners.values()].map((r) => r.status());
  }

  readHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[] | undefined> | undefined {
    const runner = this.runners.get(connector);
    if (runner === undefined) return undefined;
    if (runner.leading || this.options.relay === undefined) return runner.readHistory(items, range);
    return this.options.relay.forwardHistory(connector, items, range, HISTORY_FORWARD_TIMEOUT_MS);
  }

  writeBack(connector: string, items: readonly ConnectorWriteItem[]): Promise<ConnectorWriteResult[]> {
    const runner = this.runners.get(connector);
    if (runner === undefined) {
      const detail = `connector "${connector}" is not configured on this server (I3XD_CONNECTORS_FILE): its elements cannot be written`;
      return Promise.resolve(items.map(() => ({ ok: false as const, status: 503, detail })));
    }
    if (runner.leading || this.options.relay === undefined) return runner.writeBack(items);
    return this.options.relay.forward(connector, items, FORWARD_TIMEOUT_MS);
  }
}
