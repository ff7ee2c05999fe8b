import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../domain/history-read.js";
import type { WriteBackItem, WriteBackResult } from "../domain/write-back.js";

/**
 * What the services know of connectors, as a port: the connector framework (src/connectors/) implements
 * it, the composition root plugs it in, and the services and routes use it without importing connectors/.
 */

/** A connector as `GET /health/ready` reports it. */
export interface ConnectorStatus {
  name: string;
  kind: string;
  /** `starting`, `up`, `down`, `standby` (another replica runs it) or `stopped`. */
  state: string;
  required: boolean;
  detail?: string;
  /** Kind-specific figures (e.g. `{ edgeNodesOnline: 3 }`). */
  extra?: Record<string, unknown>;
}

/** One value a client asked to write to an element a connector owns (`system.source` is where it goes). */
export type ConnectorWriteItem = WriteBackItem;

export type ConnectorWriteResult = WriteBackResult;

export interface ConnectorPort {
  statuses(): ConnectorStatus[];
  /**
   * Hands the items to the connector's source; one result per item, in order. Refuses every item (with a
   * per-item status) when the connector is unknown, not running on this replica, or cannot write.
   */
  writeBack(connector: string, items: readonly ConnectorWriteItem[]): Promise<ConnectorWriteResult[]>;
  /**
   * History read through to the connector's source (on the replica that runs it), one result per item;
   * undefined when the connector cannot read history, is not configured to, or no replica running it
   * answered (i3xd's own history is then the whole answer).
   */
  readHistory?(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[] | undefined> | undefined;
}

/**
 * Where the port is plugged in. The services are built before the connectors (which write through them),
 * so the port arrives later; until then, and in a process without connectors, there is none.
 */
export class ConnectorLink {
  port: ConnectorPort | undefined;

  statuses(): ConnectorStatus[] {
    return this.port?.statuses() ?? [];
  }

  /** False while no connector framework that can read history through is plugged in. */
  get readsHistory(): boolean {
    return this.port?.readHistory !== undefined;
  }

  readHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[] | undefined> | undefined {
    return this.port?.readHistory?.(connector, items, range);
  }
}

/** The `system` field naming the connector that created an object and owns its values. */
export const CONNECTOR_FIELD = "connector";

/** The connector owning an object, if a connector created it. */
export function connectorOf(object: { system?: Record<string, unknown> }): string | undefined {
  const owner = object.system?.[CONNECTOR_FIELD];
  return typeof owner === "string" && owner !== "" ? owner : undefined;
}
