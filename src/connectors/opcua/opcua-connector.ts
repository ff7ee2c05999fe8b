import { X509Certificate } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import {
  AttributeIds,
  type ClientMonitoredItemBase,
  type ClientSession,
  ClientSubscription,
  constructEventFilter,
  DataChangeFilter,
  DataChangeTrigger,
  DataType,
  type DataValue,
  DeadbandType,
  HistoryReadRequest,
  type HistoryReadResult as HistoryReadResultType,
  MessageSecurityMode,
  type NodeId,
  OPCUAClient,
  ReadRawModifiedDetails,
  resolveNodeId,
  SecurityPolicy,
  type StatusCode,
  TimestampsToReturn,
  type UserIdentityInfo,
  UserTokenType,
  type Variant,
} from "node-opcua-client";
import { halfJitterDelayMs } from "../../domain/backoff.js";
import {
  type HistoryReadItem,
  type HistoryReadRange,
  type HistoryReadResult,
  pointBytes,
} from "../../domain/history-read.js";
import type { Vqt } from "../../domain/model.js";
import { formatTimestampUs, nowUs } from "../../domain/time.js";
import type {
  Connector,
  ConnectorContext,
  ConnectorHealth,
  ConnectorSettings,
  SourcePoint,
  WriteBackItem,
  WriteBackResult,
} from "../connector.js";
import {
  type AddressSpaceSnapshot,
  type BrowsedVariable,
  browseAddressSpace,
  readNamespaces,
} from "./browse.js";
import { ConnectorIds, nodeIdOf } from "./ids.js";
import { opcuaBadStatus, opcuaMonitoredItems, opcuaSessionState } from "./metrics.js";
import { modelOf } from "./model.js";
import { type OpcuaOptions, resolveOptions } from "./options.js";
import { ConversionError, pointOf, qualityOf, variantOf } from "./values.js";

/** What the connector monitors for each mapped variable. */
interface Monitored {
  elementId: string;
  variable: BrowsedVariable;
}

const NUMERIC = new Set([
  DataType.SByte,
  DataType.Byte,
  DataType.Int16,
  DataType.UInt16,
  DataType.Int32,
  DataType.UInt32,
  DataType.Int64,
  DataType.UInt64,
  DataType.Float,
  DataType.Double,
]);
/** BaseModelChangeEventType, GeneralModelChangeEventType, SemanticChangeEventType. */
const MODEL_CHANGE_EVENTS = new Set([2132, 2133, 2738]);
/** How long model-change events are gathered before one re-browse answers them all. */
const REBROWSE_DEBOUNCE_MS = 500;

/** Status codes whose write refusal is the client's fault, answered as such. */
const WRITE_REFUSALS: Record<string, number> = {
  BadTypeMismatch: 400,
  BadOutOfRange: 400,
  BadIndexRangeInvalid: 400,
  BadWriteNotSupported: 400,
  BadNotWritable: 403,
  BadUserAccessDenied: 403,
  BadNodeIdUnknown: 404,
};

/**
 * Largest message the client accepts from a server (the library's own default is none): one response of a
 * `batchSize` browse or read, or one publish, stays far below it; a server sending more is refused rather
 * than buffered.
 */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * One OPC UA server as a connector (`kind: opcua`, docs/connectors.md): browses the server into the model,
 * monitors every mapped variable, and writes back on request. node-opcua-client carries the protocol, the
 * security and the reconnection; this class maps what it reports onto the connector contract.
 */
export class OpcuaConnector implements Connector {
  readonly name: string;
  private readonly options: OpcuaOptions;
  private readonly ids: ConnectorIds;
  private context: ConnectorContext | undefined;
  private client: OPCUAClient | undefined;
  private session: ClientSession | undefined;
  private subscription: ClientSubscription | undefined;
  private snapshot: AddressSpaceSnapshot | undefined;
  private readonly monitored = new Map<string, Monitored>();
  private stateNow: ConnectorHealth = { state: "stopped" };
  private stopped = false;
  /** Bumped whenever a subscription is replaced: notifications of an older one are ignored. */
  private generation = 0;
  /** False from a connection loss until the namespaces were checked again after it. */
  private trusted = false;
  private everUp = false;
  private pending: SourcePoint[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private paused = false;
  /** The server confirmed that it holds notifications back (readiness shows it as `publishing: paused`). */
  private publishingPaused = false;
  /** Model work (browse, resynchronisation) runs one at a time in this chain. */
  private chain: Promise<void> = Promise.resolve();
  private rebrowseTimer: NodeJS.Timeout | undefined;
  private rebrowseInterval: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private certificateManager: OPCUACertificateManager | undefined;

  /** Present only with `historyReadThrough: true` (the contract's optional member). */
  readonly readHistory?: (
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ) => Promise<HistoryReadResult[]>;

  constructor(settings: ConnectorSettings) {
    this.name = settings.name;
    this.options = resolveOptions(settings.options);
    this.ids = new ConnectorIds(settings.name);
    if (this.options.historyReadThrough) this.readHistory = (items, range) => this.historyRead(items, range);
  }

  health(): ConnectorHealth {
    return {
      ...this.stateNow,
      extra: {
        monitoredItems: this.monitored.size,
        endpointUrl: this.options.endpointUrl,
        publishing: this.publishingPaused ? "paused" : "on",
      },
    };
  }

  async start(context: ConnectorContext): Promise<void> {
    this.context = context;
    this.stopped = false;
    this.stateNow = { state: "starting" };
    opcuaSessionState.set({ connector: this.name }, 0);
    opcuaMonitoredItems.set({ connector: this.name }, 0);

    const pki = join(context.dataDir, "pki");
    await mkdir(pki, { recursive: true });
    this.certificateManager = new OPCUACertificateManager({
      rootFolder: pki,
      automaticallyAcceptUnknownCertificate: this.options.trustServerCertificate,
    });
    await this.certificateManager.initialize();

    const o = this.options;
    this.client = OPCUAClient.create({
      applicationName: o.applicationName,
      endpointMustExist: false,
      securityMode: MessageSecurityMode[o.securityMode],
      securityPolicy: SecurityPolicy[o.securityPolicy as keyof typeof SecurityPolicy],
      clientCertificateManager: this.certificateManager,
      keepSessionAlive: true,
      transportSettings: { maxMessageSize: MAX_MESSAGE_BYTES },
      requestedSessionTimeout: 60_000,
      // The first connect is retried by `connectLoop` (so its state and reasons show); after a session
      // exists, the library reconnects on its own with this backoff, forever. A `maxRetry` of 0 would
      // turn that reconnection off, so the first connect makes one retry of its own.
      connectionStrategy: {
        maxRetry: 1,
        initialDelay: o.reconnect.initialDelayMs,
        maxDelay: o.reconnect.maxDelayMs,
        randomisationFactor: 0.5,
      },
    });
    this.client.on("connection_lost", () => this.onLost("connection to the OPC UA server lost"));
    this.client.on("backoff", (count, delay) =>
      context.log.debug({ attempt: count, delayMs: delay }, "OPC UA reconnect attempt"),
    );
    context.log.info(
      { endpointUrl: o.endpointUrl, securityMode: o.securityMode, securityPolicy: o.securityPolicy, pki },
      "OPC UA connector starting",
    );
    void this.connectLoop(0);
  }

  private async connectLoop(attempt: number): Promise<void> {
    const client = this.client;
    const context = this.context;
    if (!client || !context || this.stopped) return;
    try {
      await client.connect(this.options.endpointUrl);
      const session = await client.createSession(await this.identity());
      if (this.stopped) {
        await session.close().catch(() => undefined);
        return;
      }
      this.session = session;
      session.on("session_restored", () => this.enqueue(() => this.resynchronise()));
      session.on("session_closed", () => this.onLost("OPC UA session closed"));
      await this.enqueue(() => this.rebuild());
      this.markUp();
    } catch (err) {
      if (this.stopped) return;
      const detail = `${this.options.endpointUrl}: ${(err as Error).message}`;
      this.setDown(detail);
      await this.session?.close().catch(() => undefined);
      this.session = undefined;
      await client.disconnect().catch(() => undefined);
      const o = this.options.reconnect;
      const delay = halfJitterDelayMs(attempt, o.initialDelayMs, o.maxDelayMs);
      this.retryTimer = setTimeout(() => void this.connectLoop(attempt + 1), delay);
    }
  }

  private async identity(): Promise<UserIdentityInfo> {
    const id = this.options.identity;
    if (id.type === "username") {
      return { type: UserTokenType.UserName, userName: id.username, password: id.password };
    }
    if (id.type === "certificate") {
      const [certificate, privateKey] = await Promise.all([
        readFile(id.certificateFile, "utf8"),
        readFile(id.privateKeyFile, "utf8"),
      ]);
      return {
        type: UserTokenType.Certificate,
        certificateData: new X509Certificate(certificate).raw,
        privateKey,
      } as UserIdentityInfo;
    }
    return { type: UserTokenType.Anonymous };
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        await work();
      } catch (err) {
        if (!this.stopped) this.context?.log.warn({ err }, "OPC UA model synchronisation failed");
        throw err;
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private markUp(): void {
    this.trusted = true;
    this.stateNow = { state: "up" };
    opcuaSessionState.set({ connector: this.name }, 1);
    this.context?.setState("up");
    if (this.everUp) this.context?.reconnected();
    this.everUp = true;
  }

  private setDown(detail: string): void {
    if (this.stateNow.state === "down" && this.stateNow.detail === detail) return;
    this.stateNow = { state: "down", detail };
    opcuaSessionState.set({ connector: this.name }, 0);
    this.context?.log.warn({ detail }, "OPC UA connector down");
    this.context?.setState("down", detail);
  }

  private onLost(detail: string): void {
    if (this.stopped) return;
    // Until the namespaces are checked again, a notification might come from a node renumbered by a
    // restarted server: it is not believed.
    this.trusted = false;
    this.setDown(detail);
  }

  /**
   * After the library restored the session: a server whose namespaces moved is browsed and subscribed
   * afresh (the library's own resubscription used the old indexes); otherwise every value is read once,
   * so that elements whose value did not change come back from `Bad` too.
   */
  private async resynchronise(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const namespaceArray = await readNamespaces(session);
    const before = this.snapshot?.namespaceArray ?? [];
    if (namespaceArray.join("\n") !== before.join("\n")) {
      this.context?.log.info("OPC UA namespaces changed: browsing again");
      await this.rebuild();
    } else {
      this.trusted = true;
      await this.readAll();
      // A server that restarted may have gained or lost nodes without telling anyone.
      this.scheduleRebrowse();
    }
    this.markUp();
  }

  /** Browses, applies the model and monitors every variable on a new subscription. */
  private async rebuild(): Promise<void> {
    const session = this.session;
    const context = this.context;
    if (!session || !context) return;
    this.generation++;
    const old = this.subscription;
    this.subscription = undefined;
    if (old) await old.terminate().catch(() => undefined);
    this.monitored.clear();

    const snapshot = await this.browse(session);
    this.snapshot = snapshot;
    await context.applyModel(modelOf(snapshot, this.ids));

    const o = this.options.subscription;
    this.subscription = ClientSubscription.create(session, {
      requestedPublishingInterval: o.publishingIntervalMs,
      requestedLifetimeCount: 1000,
      requestedMaxKeepAliveCount: 10,
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 1,
    });
    this.trusted = true;
    await this.monitor([...snapshot.nodes.values()].filter(isVariable));
    if (this.options.rebrowse.onModelChange) await this.watchModelChanges();
    this.scheduleIntervalRebrowse();
  }

  private async browse(session: ClientSession): Promise<AddressSpaceSnapshot> {
    const started = Date.now();
    const snapshot = await browseAddressSpace(session, this.options);
    if (snapshot.leftOut > 0) {
      this.context?.count("invalid", snapshot.leftOut, `more than maxNodes (${this.options.maxNodes}) nodes`);
    }
    this.context?.log.info(
      { nodes: snapshot.nodes.size, leftOut: snapshot.leftOut, ms: Date.now() - started },
      "OPC UA address space browsed",
    );
    return snapshot;
  }

  private async monitor(variables: BrowsedVariable[]): Promise<void> {
    const subscription = this.subscription;
    if (!subscription) return;
    const generation = this.generation;
    const o = this.options.subscription;
    const batch = this.options.batchSize;
    const filtered = (v: BrowsedVariable) =>
      o.deadband.type !== "none" &&
      NUMERIC.has(v.builtIn) &&
      (o.deadband.type === "absolute" || v.metadata.euRange !== undefined);
    for (const withFilter of [false, true]) {
      const chosen = variables.filter((v) => filtered(v) === withFilter);
      const filter = withFilter
        ? new DataChangeFilter({
            trigger: DataChangeTrigger.StatusValue,
            deadbandType: o.deadband.type === "percent" ? DeadbandType.Percent : DeadbandType.Absolute,
            deadbandValue: o.deadband.value,
          })
        : null;
      for (let i = 0; i < chosen.length; i += batch) {
        const part = chosen.slice(i, i + batch);
        const entries = part.map((variable) => ({ elementId: this.ids.element(variable.key), variable }));
        for (const e of entries) this.monitored.set(e.variable.key, e);
        const group = await subscription.monitorItems(
          part.map((v) => ({ nodeId: v.nodeId, attributeId: AttributeIds.Value })),
          { samplingInterval: o.samplingIntervalMs, queueSize: o.queueSize, discardOldest: true, filter },
          TimestampsToReturn.Both,
        );
        group.on("changed", (_item: ClientMonitoredItemBase, dataValue: DataValue, index: number) => {
          const entry = entries[index];
          if (entry) this.onValue(generation, entry, dataValue);
        });
      }
    }
    opcuaMonitoredItems.set({ connector: this.name }, this.monitored.size);
  }

  private async watchModelChanges(): Promise<void> {
    const subscription = this.subscription;
    if (!subscription) return;
    const generation = this.generation;
    const item = await subscription.monitor(
      { nodeId: resolveNodeId("Server"), attributeId: AttributeIds.EventNotifier },
      {
        samplingInterval: 0,
        queueSize: 100,
        discardOldest: true,
        filter: constructEventFilter(["EventType"]),
      },
      TimestampsToReturn.Neither,
    );
    item.on("changed", (fields: unknown) => {
      if (generation !== this.generation) return;
      const eventType = (fields as Variant[])[0]?.value as NodeId | undefined;
      if (eventType?.namespace === 0 && MODEL_CHANGE_EVENTS.has(eventType.value as number)) {
        this.scheduleRebrowse();
      }
    });
  }

  private scheduleRebrowse(): void {
    if (this.rebrowseTimer || this.stopped) return;
    this.rebrowseTimer = setTimeout(() => {
      this.rebrowseTimer = undefined;
      this.enqueue(() => this.rebrowse()).catch(() => undefined);
    }, REBROWSE_DEBOUNCE_MS);
  }

  private scheduleIntervalRebrowse(): void {
    const seconds = this.options.rebrowse.intervalSeconds;
    if (seconds <= 0 || this.rebrowseInterval) return;
    this.rebrowseInterval = setInterval(() => this.scheduleRebrowse(), seconds * 1000);
    this.rebrowseInterval.unref();
  }

  /** Browses again: new nodes join the model and are monitored, vanished variables turn `Bad`. */
  private async rebrowse(): Promise<void> {
    const session = this.session;
    const context = this.context;
    if (!session || !context || !this.trusted) return;
    const snapshot = await this.browse(session);
    if (snapshot.namespaceArray.join("\n") !== this.snapshot?.namespaceArray.join("\n")) {
      await this.rebuild();
      return;
    }
    await context.applyModel(modelOf(snapshot, this.ids));
    const variables = [...snapshot.nodes.values()].filter(isVariable);
    const added = variables.filter((v) => !this.monitored.has(v.key));
    const gone = [...this.monitored.values()].filter((m) => !snapshot.nodes.has(m.variable.key));
    this.snapshot = snapshot;
    const at = nowUs();
    for (const m of gone) {
      this.monitored.delete(m.variable.key);
      this.push({ elementId: m.elementId, value: null, quality: "Bad", tsUs: at });
    }
    await this.monitor(added);
    if (added.length > 0 || gone.length > 0) {
      context.log.info({ added: added.length, removed: gone.length }, "OPC UA address space changed");
    }
  }

  /** One read of every monitored variable, pushed like notifications. */
  private async readAll(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const entries = [...this.monitored.values()];
    const batch = this.options.batchSize;
    for (let i = 0; i < entries.length; i += batch) {
      const part = entries.slice(i, i + batch);
      const values = await session.read(
        part.map((e) => ({ nodeId: e.variable.nodeId, attributeId: AttributeIds.Value })),
        0,
      );
      const received = nowUs();
      for (const [j, e] of part.entries()) {
        const dv = values[j];
        if (dv) this.pushValue(e, dv, received);
      }
    }
  }

  private onValue(generation: number, entry: Monitored, dataValue: DataValue): void {
    if (generation !== this.generation || !this.trusted || this.stopped) return;
    if (this.monitored.get(entry.variable.key) !== entry) return;
    this.pushValue(entry, dataValue, nowUs());
  }

  private pushValue(entry: Monitored, dataValue: DataValue, receivedUs: number): void {
    const point = pointOf(entry.elementId, dataValue, receivedUs);
    if (point.quality === "Bad") {
      opcuaBadStatus.inc({ connector: this.name, status: statusName(dataValue.statusCode) });
    }
    this.push(point);
  }

  private push(point: SourcePoint): void {
    this.pending.push(point);
    this.pendingBytes += approximateBytes(point.value);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Every notification of one publish response arrives in the same turn: one submit carries them all.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const context = this.context;
    if (!context || this.stopped || this.pending.length === 0) return;
    const points = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    context.count("received", points.length);
    if (!context.submit(points, points.length, bytes)) this.pause(context);
  }

  /**
   * A full write queue stops publishing on the server: it keeps queueing per monitored item (up to
   * `queueSize`, dropping the oldest) until the connector asks for notifications again.
   */
  private pause(context: ConnectorContext): void {
    const subscription = this.subscription;
    if (this.paused || !subscription) return;
    this.paused = true;
    subscription
      .setPublishingMode(false)
      .then(() => {
        if (this.paused) this.publishingPaused = true;
      })
      .catch(() => undefined);
    void context.drained().then(() => {
      this.paused = false;
      this.publishingPaused = false;
      if (!this.stopped) subscription.setPublishingMode(true).catch(() => undefined);
    });
  }

  async write(items: readonly WriteBackItem[]): Promise<WriteBackResult[]> {
    const results: WriteBackResult[] = items.map(() => ({ ok: false, status: 500, detail: "not attempted" }));
    if (!this.options.writable) {
      return items.map(() => ({
        ok: false,
        status: 403,
        detail: `connector "${this.name}" does not allow writes (options.writable)`,
      }));
    }
    const session = this.session;
    const namespaceArray = this.snapshot?.namespaceArray;
    if (!session || !namespaceArray || !this.trusted) {
      return items.map(() => ({ ok: false, status: 503, detail: "the OPC UA server is not connected" }));
    }
    const toWrite: { index: number; nodeId: NodeId; value: Variant }[] = [];
    for (const [index, item] of items.entries()) {
      const key = typeof item.source === "string" ? item.source : this.ids.keyOf(item.elementId);
      const variable = key ? this.snapshot?.nodes.get(key) : undefined;
      if (!key || !variable || !isVariable(variable)) {
        results[index] = { ok: false, status: 404, detail: `${item.elementId} is not an OPC UA variable` };
        continue;
      }
      if (!variable.writable) {
        results[index] = {
          ok: false,
          status: 403,
          detail: `${item.elementId}: its AccessLevel forbids writes`,
        };
        continue;
      }
      try {
        toWrite.push({
          index,
          nodeId: nodeIdOf(key, namespaceArray),
          value: variantOf(item.value, variable.builtIn, variable.isArray),
        });
      } catch (err) {
        const status = err instanceof ConversionError ? 400 : 404;
        results[index] = { ok: false, status, detail: `${item.elementId}: ${(err as Error).message}` };
      }
    }
    if (toWrite.length === 0) return results;
    let statuses: StatusCode[];
    try {
      statuses = await session.write(
        toWrite.map((w) => ({
          nodeId: w.nodeId,
          attributeId: AttributeIds.Value,
          value: { value: w.value },
        })),
      );
    } catch (err) {
      for (const w of toWrite) {
        results[w.index] = {
          ok: false,
          status: 502,
          detail: `OPC UA write failed: ${(err as Error).message}`,
        };
      }
      return results;
    }
    for (const [i, w] of toWrite.entries()) {
      const status = statuses[i];
      if (status && qualityOf(status) === "Good") {
        results[w.index] = { ok: true };
        continue;
      }
      const name = status ? statusName(status) : "no status";
      results[w.index] = {
        ok: false,
        status: WRITE_REFUSALS[name] ?? 502,
        detail: `the OPC UA server refused the write: ${name}`,
      };
    }
    return results;
  }

  /**
   * OPC UA HistoryRead (raw values) of the historizing variables among `items`, following the server's
   * continuation points until `range.limit` points per variable or `range.maxBytes` for all of them. One
   * point more than the limit is asked for, so a variable is truncated only when the limit really cuts.
   */
  private async historyRead(
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[]> {
    const session = this.session;
    const namespaceArray = this.snapshot?.namespaceArray;
    if (!session || !namespaceArray || !this.trusted) {
      return items.map(() => ({ ok: false, detail: "the OPC UA server is not connected" }));
    }
    const results: HistoryReadResult[] = items.map((item) => ({
      ok: false,
      detail: `${item.elementId} is not a historizing OPC UA variable`,
    }));
    const reads: HistoryPaging[] = [];
    for (const [index, item] of items.entries()) {
      const key = typeof item.source === "string" ? item.source : this.ids.keyOf(item.elementId);
      const node = key ? this.snapshot?.nodes.get(key) : undefined;
      if (!key || !node || !isVariable(node) || !node.historizing) continue;
      reads.push({
        index,
        elementId: item.elementId,
        nodeId: nodeIdOf(key, namespaceArray),
        points: [],
        truncated: false,
        emptyPages: 0,
      });
    }
    if (reads.length === 0) return results;
    const start = new Date(Math.floor(range.startUs / 1000));
    const end = new Date(Math.ceil(range.endUs / 1000));
    const budget = { left: range.maxBytes };
    let pending = reads;
    try {
      while (pending.length > 0) {
        const page = await session.readHistoryValue(
          pending.map((r) =>
            r.continuationPoint
              ? { nodeId: r.nodeId, continuationPoint: r.continuationPoint }
              : { nodeId: r.nodeId },
          ),
          start,
          end,
          { numValuesPerNode: range.limit + 1, returnBounds: false },
        );
        const received = nowUs();
        for (const [j, r] of pending.entries()) takePage(r, page[j], range, budget, received);
        pending = pending.filter(
          (r) => r.continuationPoint !== undefined && r.failed === undefined && !r.truncated,
        );
      }
    } finally {
      await this.releaseContinuationPoints(session, reads, start, end);
    }
    for (const r of reads) {
      results[r.index] =
        r.failed === undefined
          ? { ok: true, points: r.points, truncated: r.truncated }
          : { ok: false, detail: r.failed };
    }
    return results;
  }

  /** Frees what the server keeps for reads stopped before their end (cut by a limit, or failed). */
  private async releaseContinuationPoints(
    session: ClientSession,
    reads: readonly HistoryPaging[],
    startTime: Date,
    endTime: Date,
  ): Promise<void> {
    const open = reads.filter((r) => r.continuationPoint !== undefined);
    if (open.length === 0) return;
    const request = new HistoryReadRequest({
      historyReadDetails: new ReadRawModifiedDetails({ startTime, endTime, isReadModified: false }),
      nodesToRead: open.map((r) => ({ nodeId: r.nodeId, continuationPoint: r.continuationPoint })),
      releaseContinuationPoints: true,
      timestampsToReturn: TimestampsToReturn.Both,
    });
    await withDeadline(session.historyRead(request), 2000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.rebrowseTimer);
    clearInterval(this.rebrowseInterval);
    this.rebrowseTimer = undefined;
    this.rebrowseInterval = undefined;
    this.pending = [];
    const subscription = this.subscription;
    const session = this.session;
    const client = this.client;
    this.subscription = undefined;
    this.session = undefined;
    this.client = undefined;
    await withDeadline(subscription?.terminate(), 2000);
    await withDeadline(session?.close(), 2000);
    await withDeadline(client?.disconnect(), 2000);
    await withDeadline(this.certificateManager?.dispose(), 2000);
    this.monitored.clear();
    opcuaMonitoredItems.set({ connector: this.name }, 0);
    opcuaSessionState.set({ connector: this.name }, 0);
    this.stateNow = { state: "stopped" };
  }
}

/** One variable's HistoryRead while it is paged through its continuation points. */
interface HistoryPaging {
  index: number;
  elementId: string;
  nodeId: NodeId;
  points: Vqt[];
  truncated: boolean;
  /** The server's continuation point: more values are waiting. */
  continuationPoint?: Buffer;
  /** Pages in a row that brought nothing while promising more. */
  emptyPages: number;
  failed?: string;
}

/** Pages in a row without a value after which a server's continuation points are no longer followed. */
const MAX_EMPTY_PAGES = 3;

/** Adds one page of a variable's history, within the range's point limit and the shared byte budget. */
function takePage(
  r: HistoryPaging,
  result: HistoryReadResultType | undefined,
  range: HistoryReadRange,
  budget: { left: number },
  receivedUs: number,
): void {
  const cp = result?.continuationPoint;
  r.continuationPoint = cp !== null && cp !== undefined && cp.length > 0 ? cp : undefined;
  if (!result || qualityOf(result.statusCode) !== "Good") {
    r.failed = `HistoryRead: ${result ? statusName(result.statusCode) : "no result"}`;
    return;
  }
  const dataValues = (result.historyData as { dataValues?: DataValue[] } | null)?.dataValues ?? [];
  let added = 0;
  for (const dv of dataValues) {
    const p = pointOf(r.elementId, dv, receivedUs);
    if (p.tsUs < range.startUs || p.tsUs > range.endUs) continue;
    const point: Vqt = { value: p.value, quality: p.quality, timestamp: formatTimestampUs(p.tsUs) };
    const bytes = pointBytes(point);
    if (r.points.length >= range.limit || bytes > budget.left) {
      r.truncated = true;
      return;
    }
    budget.left -= bytes;
    r.points.push(point);
    added++;
  }
  r.emptyPages = added === 0 ? r.emptyPages + 1 : 0;
  // A server that keeps promising more without sending any is taken at its word, but no further.
  if (r.continuationPoint !== undefined && r.emptyPages >= MAX_EMPTY_PAGES) r.truncated = true;
}

function isVariable(node: { nodeClass: string }): node is BrowsedVariable {
  return node.nodeClass === "Variable";
}

function statusName(status: StatusCode): string {
  return status.name.split(" ")[0] || `0x${status.value.toString(16)}`;
}

function approximateBytes(value: unknown): number {
  if (value === null || typeof value === "number" || typeof value === "boolean") return 16;
  if (typeof value === "string") return 16 + value.length;
  return 16 + JSON.stringify(value).length;
}

async function withDeadline(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
