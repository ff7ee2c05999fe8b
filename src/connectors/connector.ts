import type { Logger } from "pino";
import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../domain/history-read.js";
import type { Quality } from "../domain/model.js";
import type { WriteBackItem, WriteBackResult } from "../domain/write-back.js";
import type { ModelDocument, ModelObject, ModelObjectType } from "../model/format.js";

/**
 * The contract between the connector framework (`src/connectors/framework/`) and each kind of source
 * (MQTT, Sparkplug B, OPC UA). A connector turns its source into model pieces and points and hands both to
 * the framework; the framework owns everything else: the bounded queue, the one write path, leadership
 * among replicas, quality on loss, metrics, readiness and write-back routing. Design: docs/adr/011.
 */

/** What every entry of the connectors file carries, whatever its kind. */
export interface ConnectorSettings {
  /** Unique in the file: metric label, log field, and the owner recorded on every object it creates. */
  name: string;
  kind: string;
  /** When true, a connector that cannot reach its source makes `GET /health/ready` answer 503. */
  required: boolean;
  /** What the connector's elements show while its source is lost. */
  onLoss: "bad" | "uncertain";
  /** The kind's own settings, validated against the kind's JSON schema. */
  options: Record<string, unknown>;
}

/** One value as a connector received it. */
export interface SourcePoint {
  elementId: string;
  /** A JSON value; null only with `Bad` or `GoodNoData`. */
  value: unknown;
  quality: Quality;
  /** Source timestamp, microseconds since the epoch (the receive time when the source gives none). */
  tsUs: number;
  /** History only (Sparkplug `is_historical`, backfill): never replaces a newer current value. */
  historical?: boolean;
}

export type ConnectorState = "starting" | "up" | "down" | "standby" | "stopped";

export interface ConnectorHealth {
  state: ConnectorState;
  /** Why the connector is not up, for `GET /health/ready` and the logs (never a secret). */
  detail?: string;
  /** Kind-specific figures worth showing (e.g. `{ edgeNodesOnline: 3 }`). */
  extra?: Record<string, unknown>;
}

/** Counted in `connector_messages_total{connector,outcome}`. */
export type MessageOutcome = "received" | "stored" | "unmatched" | "invalid" | "dropped";

/**
 * What the framework gives a running connector. Every method is safe to call at any rate: counting and
 * logging are bounded by the framework.
 */
export interface ConnectorContext {
  readonly settings: ConnectorSettings;
  readonly log: Logger;
  /** Where a connector keeps files of its own (OPC UA's PKI folder), under `I3XD_DATA_DIR`. */
  readonly dataDir: string;
  /**
   * Queues points for the write path. `messages` is how many source messages they came from and `bytes`
   * their size on the wire: the queue is bounded by both. Returns false when the queue is at its
   * high-water mark: the connector stops reading from its source until `drained()` resolves. Points that
   * do not fit at all are dropped and counted, never written in part.
   */
  submit(points: readonly SourcePoint[], messages: number, bytes: number): boolean;
  /** Resolves when the queue has room again. */
  drained(): Promise<void>;
  /**
   * Upserts model pieces (types, objects, relationships) through the one model-write path: validated,
   * stored in one transaction, caches invalidated, other replicas notified. Objects the connector creates
   * carry `system.connector = settings.name` (set by the framework) and may carry `system.source` (the
   * topic, metric or node id they stand for). Idempotent: applying what is already stored changes nothing.
   */
  applyModel(change: Partial<ModelDocument>): Promise<void>;
  /**
   * Optional: the objects and object types the store already holds among these ids (absent ones are left
   * out). A connector that infers types reads them so that a restarted or newly elected replica widens the
   * stored schema instead of replacing it with a narrower one, and creates a folder only where no object
   * stands yet. Without it a connector knows only what it applied since it started.
   */
  readModel?(
    objectIds: readonly string[],
    typeIds: readonly string[],
  ): Promise<{ objects: ModelObject[]; objectTypes: ModelObjectType[] }>;
  /**
   * Removes objects the connector created, with everything below them (components and children), their
   * relationships, current values and history, through the same model-write path: one transaction,
   * caches invalidated, other replicas notified. For a source that says a thing is gone (a Sparkplug
   * birth that no longer lists a metric); a kind need not use it. Points submitted before the call are
   * written first, so none lands after the removal. An object of another owner refuses the whole call
   * (`ModelValidationError`); ids already gone are skipped. Resolves with the ids removed.
   */
  removeModel(elementIds: readonly string[]): Promise<string[]>;
  /** Counts source messages by outcome; `reason` is logged (rate-limited) for `invalid` and `dropped`. */
  count(outcome: MessageOutcome, n?: number, reason?: string): void;
  /**
   * The source is reachable (`up`) or lost (`down`). On `down` the framework marks every element of the
   * connector `Bad` (value null) or `Uncertain` holding its last value, per `settings.onLoss`, at `atUs`
   * (default now); the next point for an element brings it back.
   */
  setState(state: "up" | "down", detail?: string, atUs?: number): void;
  /** Counts a reconnect in `connector_reconnects_total`. */
  reconnected(): void;
}

/** Write-back items and answers are the domain's: the services route them without importing connectors/. */
export type { WriteBackItem, WriteBackResult };

export interface Connector {
  readonly name: string;
  /** Called once this replica runs the connector (it holds the connector's leadership). */
  start(context: ConnectorContext): Promise<void>;
  /** Releases the source; after it resolves, nothing more is submitted. */
  stop(): Promise<void>;
  health(): ConnectorHealth;
  /**
   * Write-back (`PUT /v1/objects/value`), one result per item in order. Absent when the kind cannot write.
   * Resolves once the source accepted or refused each item; the framework stores accepted values through
   * the write path afterwards, so nothing is stored before the source took it.
   */
  write?(items: readonly WriteBackItem[]): Promise<WriteBackResult[]>;
  /**
   * History from the source itself, for a range older than what i3xd holds (`POST /objects/history`
   * read-through), one result per item in order; points oldest first, at most `range.limit` each. Absent
   * when the kind cannot read history or the connector is not configured to. Nothing read is stored.
   */
  readHistory?(items: readonly HistoryReadItem[], range: HistoryReadRange): Promise<HistoryReadResult[]>;
}

/** One kind of connector, as the framework's registry knows it. */
export interface ConnectorKind {
  kind: string;
  /** JSON schema of `options` (draft-07); errors name the connector and the field. */
  optionsSchema: Record<string, unknown>;
  /**
   * Optional: problems of schema-valid options that a JSON schema cannot express (a topic pattern, a
   * template naming an unknown placeholder), each with its field (`rules[2].elementId`). Checked with the
   * connectors file at start-up, so that `create` never meets them.
   */
  check?(options: Record<string, unknown>): { field: string; problem: string }[];
  create(settings: ConnectorSettings): Connector;
}
