import { randomBytes } from "node:crypto";
import type { Config } from "../config.js";
import { type Access, forbiddenItem } from "../domain/access.js";
import type { ChangeFeed, ValueChange } from "../domain/changes.js";
import { type BulkItem, I3xError, itemError, itemOk, type ResponseDetail } from "../domain/errors.js";
import type { Quality } from "../domain/model.js";
import { getLogger } from "../observability/logger.js";
import {
  limitRejections,
  sseStreamsClosed,
  sseStreamsOpen,
  subscriptionDroppedUpdates,
  subscriptionQueuedBytes,
  subscriptionQueuedUpdates,
  subscriptionsActive,
} from "../observability/metrics.js";
import { traceDelivery } from "../observability/tracing.js";
import type { Store } from "../store/store.js";
import { planDepth, walkComposition } from "./composition.js";
import { elementNotFound, permitted } from "./model.js";

/** One queued value change, in the wire shape of sync batches and stream events. */
export interface SubscriptionUpdate {
  elementId: string;
  value: unknown;
  quality: Quality;
  timestamp: string;
}

export interface SyncBatch {
  sequenceNumber: number;
  updates: SubscriptionUpdate[];
}

export interface MonitoredObject {
  elementId: string;
  maxDepth: number;
}

export interface SubscriptionDetail {
  subscriptionId: string;
  displayName: string;
  monitoredObjects: MonitoredObject[];
}

export interface CreatedSubscription {
  clientId: string;
  subscriptionId: string;
  displayName: string;
}

/** Batches still unacknowledged, and the 206 detail when updates were lost since the last sync answer. */
export interface SyncOutcome {
  batches: SyncBatch[];
  loss?: ResponseDetail;
}

export interface RegisterOutcome {
  items: BulkItem<null>[];
  /** Set when the server's composition depth limit cut a registration short (HTTP 206). */
  partial?: ResponseDetail;
}

/**
 * The transport end of a stream (the SSE response). The service decides what to send and when; the sink
 * only frames and writes. `deliver` and `comment` return false when the transport is not draining: the
 * service then stops taking updates out of the bounded queue until the handle's `resume` is called.
 */
export interface UpdateSink {
  deliver(updates: readonly SubscriptionUpdate[]): boolean;
  comment(text: string): boolean;
  /** Ends the transport normally (take-over, delete, expiry, shutdown). Must not call back synchronously. */
  end(): void;
  /** Drops the transport at once: its client stopped reading, so a normal end would never be delivered. */
  abort(): void;
}

/** What the transport calls back on: it drained, or it went away (client disconnect, end). */
export interface StreamHandle {
  resume(): void;
  close(): void;
}

export type SubscriptionSettings = Pick<
  Config,
  | "subscriptionQueueMax"
  | "subscriptionTtlSeconds"
  | "maxSubscriptionsPerClient"
  | "maxSubscriptions"
  | "sseHeartbeatSeconds"
  | "maxCompositionDepth"
  | "limits"
>;

export interface SubscriptionServiceOptions {
  store: Store;
  changes: ChangeFeed;
  config: SubscriptionSettings;
  /** Clock in milliseconds; replaceable so expiry can be tested without waiting. */
  now?: () => number;
}

/** Largest number of updates framed into one stream event, so one event never becomes huge. */
const EVENT_MAX_UPDATES = 500;
const SUBSCRIPTION_ID_BYTES = 24;

const log = getLogger("i3xd.subscriptions");

const subscriptionNotFound = (id: string) => `Subscription not found: ${id}`;

/**
 * FIFO of updates with O(1) append and O(1) drop-oldest. A plain array's `shift` is O(n), which a full
 * queue of 10,000 would pay on every change.
 */
class UpdateQueue {
  private items: (SubscriptionUpdate | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(update: SubscriptionUpdate): void {
    this.items.push(update);
  }

  /** Removes the oldest update and returns it. */
  dropOldest(): SubscriptionUpdate {
    const oldest = this.items[this.head] as SubscriptionUpdate;
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return oldest;
  }

  /** Removes and returns up to `n` of the oldest updates. */
  take(n: number): SubscriptionUpdate[] {
    const end = Math.min(this.head + n, this.items.length);
    const out = this.items.slice(this.head, end) as SubscriptionUpdate[];
    if (end === this.items.length) this.clear();
    else {
      this.items = this.items.slice(end);
      this.head = 0;
    }
    return out;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

interface Registration {
  maxDepth: number;
  /** The registered element and the components its maxDepth reached, fixed at registration time. */
  elements: string[];
}

interface ActiveStream {
  sink: UpdateSink;
  /** The transport reported it is not draining; nothing more is taken from the queue until it resumes. */
  blocked: boolean;
  /** When the transport last stopped draining, ms; a stream blocked longer than the stall timeout is closed. */
  blockedSinceMs: number;
  flushScheduled: boolean;
}

/** Why a stream ended, the `reason` of `sse_streams_closed_total`. */
type StreamEnd = "client" | "replaced" | "deleted" | "expired" | "shutdown" | "stalled";

/** Estimated bytes of each queued update (its JSON size), shared by every queue holding it. */
const updateBytes = new WeakMap<SubscriptionUpdate, number>();

/** Field names, quotes and separators of an update's JSON, besides its values. */
const UPDATE_FRAMING_BYTES = 64;

function bytesOf(updates: readonly SubscriptionUpdate[]): number {
  let n = 0;
  for (const u of updates) n += updateBytes.get(u) ?? 0;
  return n;
}

class Subscription {
  readonly registrations = new Map<string, Registration>();
  /** elementId → number of registrations covering it; an element is in the fan-out index while > 0. */
  readonly interest = new Map<string, number>();
  readonly pending = new UpdateQueue();
  batches: SyncBatch[] = [];
  batchedCount = 0;
  nextSequence = 1;
  /** Pending updates were dropped since the last batch was formed: the next batch skips a number. */
  pendingLost = false;
  droppedSinceReport = 0;
  stream: ActiveStream | null = null;
  deleted = false;
  /** Estimated bytes of `pending` plus `batches`. */
  queuedBytes = 0;

  constructor(
    readonly id: string,
    readonly clientId: string,
    readonly displayName: string,
    public lastActivityMs: number,
    /** The owner's access as of its latest call: what may be registered and delivered. */
    public access: Access,
    /** Who holds it for the per-key share (`key:<id>` or `ip:<address>`); unset: no share applies. */
    readonly owner: string | undefined,
  ) {}

  get queued(): number {
    return this.pending.length + this.batchedCount;
  }
}

/**
 * In-memory i3X subscriptions fed by the change feed. A change reaches only the subscriptions that watch
 * its element (index elementId → subscriptions), so the cost of a write does not grow with the number of
 * idle subscriptions. Every queue is bounded; what is dropped is counted. Decisions: docs/adr/004-subscriptions.md.
 */
export class SubscriptionService {
  private readonly store: SubscriptionServiceOptions["store"];
  private readonly config: SubscriptionSettings;
  private readonly now: () => number;
  private readonly subs = new Map<string, Subscription>();
  private readonly perClient = new Map<string, number>();
  private readonly perOwner = new Map<string, number>();
  private readonly index = new Map<string, Set<Subscription>>();
  private readonly streaming = new Set<Subscription>();
  private readonly stopFeed: () => void;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private queuedTotal = 0;
  private queuedBytesTotal = 0;
  private readonly stallTimer: NodeJS.Timeout;
  private droppedTotal = 0;
  private closed = false;

  constructor(options: SubscriptionServiceOptions) {
    this.store = options.store;
    this.config = options.config;
    this.now = options.now ?? Date.now;
    this.stopFeed = options.changes.subscribe((changes) => this.onChanges(changes));
    const ttlMs = this.config.subscriptionTtlSeconds * 1000;
    // A quarter of the TTL keeps an expired subscription from lingering much past its time; access checks
    // expiry too, so the sweep only reclaims memory of subscriptions nobody asks about.
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(Math.max(ttlMs / 4, 250), 30_000));
    this.sweepTimer.unref();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.config.sseHeartbeatSeconds * 1000);
    this.heartbeatTimer.unref();
    const stallMs = this.config.limits.sseStallTimeoutMs;
    this.stallTimer = setInterval(() => this.closeStalled(), Math.max(100, Math.min(stallMs / 4, 5000)));
    this.stallTimer.unref();
  }

  /** Counters for tests and diagnostics; the same numbers the gauges export. */
  stats(): { subscriptions: number; streams: number; queued: number; queuedBytes: number; dropped: number } {
    return {
      subscriptions: this.subs.size,
      streams: this.streaming.size,
      queued: this.queuedTotal,
      queuedBytes: this.queuedBytesTotal,
      dropped: this.droppedTotal,
    };
  }

  /**
   * `owner` names the API key (or client address when running open) the subscription counts against, so
   * one client cannot take every slot by inventing clientIds; the process-wide limit is the last guard.
   */
  create(
    access: Access,
    clientId: unknown,
    displayName?: string | null,
    owner?: string,
  ): CreatedSubscription {
    const requested = requireClientId(clientId);
    const client = ownedClientId(access, requested);
    this.assertOpen();
    const ownerHeld = owner === undefined ? 0 : (this.perOwner.get(owner) ?? 0);
    const perKey = this.config.limits.maxSubscriptionsPerKey;
    if (owner !== undefined && ownerHeld >= perKey) {
      limitRejections.inc({ limit: "subscriptions_per_key" });
      throw new I3xError(
        429,
        `Subscription limit per ${owner.startsWith("key:") ? "API key" : "client address"} reached: at most ${perKey} (I3XD_MAX_SUBSCRIPTIONS_PER_KEY); delete one first`,
      );
    }
    if (this.subs.size >= this.config.maxSubscriptions) {
      limitRejections.inc({ limit: "subscriptions" });
      throw new I3xError(
        429,
        `The server holds its maximum of ${this.config.maxSubscriptions} subscriptions (I3XD_MAX_SUBSCRIPTIONS); delete unused ones or retry later`,
      );
    }
    const held = this.perClient.get(client) ?? 0;
    if (held >= this.config.maxSubscriptionsPerClient) {
      limitRejections.inc({ limit: "subscriptions_per_client" });
      throw new I3xError(
        429,
        `This clientId already holds the maximum of ${this.config.maxSubscriptionsPerClient} subscriptions (I3XD_MAX_SUBSCRIPTIONS_PER_CLIENT); delete one first`,
      );
    }
    let id = randomBytes(SUBSCRIPTION_ID_BYTES).toString("base64url");
    while (this.subs.has(id)) id = randomBytes(SUBSCRIPTION_ID_BYTES).toString("base64url");
    const name = typeof displayName === "string" && displayName !== "" ? displayName : id;
    const sub = new Subscription(id, client, name, this.now(), access, owner);
    this.subs.set(id, sub);
    this.perClient.set(client, held + 1);
    if (owner !== undefined) this.perOwner.set(owner, ownerHeld + 1);
    subscriptionsActive.inc();
    log.debug({ subscription: shortId(id) }, "Subscription created");
    return { clientId: requested, subscriptionId: id, displayName: name };
  }

  list(
    access: Access,
    clientId: unknown,
    subscriptionIds: readonly string[],
  ): BulkItem<SubscriptionDetail>[] {
    const client = ownedClientId(access, requireClientId(clientId));
    return subscriptionIds.map((id) => {
      const sub = this.lookup(client, id);
      if (!sub) return itemError(id, 404, subscriptionNotFound(id));
      const monitoredObjects: MonitoredObject[] = [];
      for (const [elementId, r] of sub.registrations) {
        // A key narrowed since it registered the element does not see it any more.
        if (access.allows(elementId)) monitoredObjects.push({ elementId, maxDepth: r.maxDepth });
      }
      return itemOk(id, { subscriptionId: sub.id, displayName: sub.displayName, monitoredObjects });
    });
  }

  delete(access: Access, clientId: unknown, subscriptionIds: readonly string[]): BulkItem<null>[] {
    const client = ownedClientId(access, requireClientId(clientId));
    return subscriptionIds.map((id) => {
      const sub = this.lookup(client, id);
      if (!sub) return itemError(id, 404, subscriptionNotFound(id));
      this.remove(sub, "deleted");
      return itemOk(id, null);
    });
  }

  /**
   * Monitors each element and the components `maxDepth` reaches, as far as the access permits: a denied id
   * is a 403 item, and a denied component is neither monitored nor delivered.
   */
  async register(
    access: Access,
    clientId: unknown,
    subscriptionId: string,
    elementIds: readonly string[],
    maxDepth = 1,
  ): Promise<RegisterOutcome> {
    const sub = this.owned(access, clientId, subscriptionId);
    const fresh = permitted(access, elementIds).filter((id) => !sub.registrations.has(id));
    const found = fresh.length > 0 ? await this.store.getObjects(fresh) : new Map();
    const plan = planDepth(maxDepth, this.config.maxCompositionDepth);
    const walk = await walkComposition(access, this.store, [...found.values()], plan, async () => new Map());
    // The subscription may have been deleted or expired while the store answered.
    if (sub.deleted) throw new I3xError(404, subscriptionNotFound(subscriptionId));

    let truncated = false;
    const coverage = (root: string): string[] => {
      const seen = new Set<string>([root]);
      let frontier = [root];
      for (let level = 1; level <= plan.levels && frontier.length > 0; level++) {
        const next: string[] = [];
        for (const id of frontier) {
          for (const kid of walk.children.get(id) ?? []) {
            if (!seen.has(kid)) {
              seen.add(kid);
              next.push(kid);
            }
          }
        }
        frontier = next;
      }
      if (plan.serverLimited && frontier.some((id) => (walk.children.get(id)?.length ?? 0) > 0))
        truncated = true;
      return [...seen];
    };

    const items = elementIds.map((id): BulkItem<null> => {
      if (!access.allows(id)) return forbiddenItem(id);
      // A repeated registration succeeds and is ignored, whatever its maxDepth (ADR 004, A15).
      if (sub.registrations.has(id)) return itemOk(id, null);
      if (!found.has(id)) return itemError(id, 404, elementNotFound(id));
      const elements = coverage(id);
      sub.registrations.set(id, { maxDepth, elements });
      for (const element of elements) this.addInterest(sub, element);
      return itemOk(id, null);
    });
    const partial: ResponseDetail | undefined = truncated
      ? {
          title: "Partial Content",
          status: 206,
          detail: `Composition deeper than the server limit of ${this.config.maxCompositionDepth} levels; components below it are not monitored, register them by elementId`,
        }
      : undefined;
    return { items, partial };
  }

  async unregister(
    access: Access,
    clientId: unknown,
    subscriptionId: string,
    elementIds: readonly string[],
  ): Promise<BulkItem<null>[]> {
    const sub = this.owned(access, clientId, subscriptionId);
    const unregistered = permitted(access, elementIds).filter((id) => !sub.registrations.has(id));
    const known = unregistered.length > 0 ? await this.store.getObjects(unregistered) : new Map();
    if (sub.deleted) throw new I3xError(404, subscriptionNotFound(subscriptionId));
    const removedNow = new Set<string>();
    return elementIds.map((id): BulkItem<null> => {
      if (!access.allows(id)) return forbiddenItem(id);
      const registration = sub.registrations.get(id);
      if (registration) {
        // Already queued values stay: the guide wants only new queuing to stop.
        sub.registrations.delete(id);
        for (const element of registration.elements) this.removeInterest(sub, element);
        removedNow.add(id);
        return itemOk(id, null);
      }
      if (removedNow.has(id) || known.has(id)) return itemOk(id, null);
      return itemError(id, 404, elementNotFound(id));
    });
  }

  /**
   * Acknowledges, bundles what is pending into a new batch and returns every unacknowledged batch.
   * `lastSequenceNumber`: undefined/null → acknowledge nothing; -1 → clear everything; an integer within
   * 0…highest issued → drop batches up to it; anything else is invalid and clears nothing (ADR 004, A13).
   */
  sync(
    access: Access,
    clientId: unknown,
    subscriptionId: string,
    lastSequenceNumber?: number | null,
  ): SyncOutcome {
    const sub = this.owned(access, clientId, subscriptionId);
    if (sub.stream) {
      throw new I3xError(409, "The subscription has an open stream; close the stream before calling sync");
    }
    sub.lastActivityMs = this.now();
    let delta = 0;
    if (lastSequenceNumber === -1) {
      delta -= sub.queued;
      this.countBytes(sub, -sub.queuedBytes);
      sub.batches = [];
      sub.batchedCount = 0;
      sub.pending.clear();
      sub.pendingLost = false;
      sub.droppedSinceReport = 0;
      this.adjustQueued(delta);
      return { batches: [] };
    }
    if (
      typeof lastSequenceNumber === "number" &&
      Number.isSafeInteger(lastSequenceNumber) &&
      lastSequenceNumber >= 0 &&
      lastSequenceNumber < sub.nextSequence
    ) {
      let acked = 0;
      while (acked < sub.batches.length && sub.batches[acked].sequenceNumber <= lastSequenceNumber) {
        delta -= sub.batches[acked].updates.length;
        this.countBytes(sub, -bytesOf(sub.batches[acked].updates));
        acked++;
      }
      if (acked > 0) {
        sub.batches = sub.batches.slice(acked);
        sub.batchedCount += delta;
      }
    }
    if (sub.pending.length > 0) {
      // Updates dropped before they were ever batched consume a number of their own, so a client sees the
      // gap (lastSequenceNumber+1 … result[0].sequenceNumber-1) the guide's data-loss rule describes.
      if (sub.pendingLost) sub.nextSequence++;
      sub.pendingLost = false;
      const updates = sub.pending.take(sub.pending.length);
      sub.batches.push({ sequenceNumber: sub.nextSequence++, updates });
      sub.batchedCount += updates.length;
    }
    this.adjustQueued(delta);
    let loss: ResponseDetail | undefined;
    if (sub.droppedSinceReport > 0) {
      loss = {
        title: "Updates dropped due to queue overflow",
        status: 206,
        detail:
          `${sub.droppedSinceReport} updates were dropped from the subscription queue, oldest first; ` +
          `the server limit is ${this.config.subscriptionQueueMax} updates. Sequence numbers between your ` +
          "last acknowledged one and the first returned one carried the lost updates.",
      };
      sub.droppedSinceReport = 0;
    }
    return { batches: sub.batches.slice(), loss };
  }

  /**
   * Attaches a stream to the subscription, ending any stream already open on it (the old client sees a
   * normal end). Queued updates are written at once, then changes as they happen.
   */
  openStream(access: Access, clientId: unknown, subscriptionId: string, sink: UpdateSink): StreamHandle {
    const sub = this.owned(access, clientId, subscriptionId);
    if (sub.stream) this.detachStream(sub, sub.stream, "replaced");
    const stream: ActiveStream = { sink, blocked: false, blockedSinceMs: 0, flushScheduled: false };
    sub.stream = stream;
    sub.lastActivityMs = this.now();
    this.streaming.add(sub);
    sseStreamsOpen.inc();
    this.flush(sub, stream);
    return {
      resume: () => {
        if (sub.stream !== stream || !stream.blocked) return;
        stream.blocked = false;
        sub.lastActivityMs = this.now();
        this.flush(sub, stream);
      },
      close: () => {
        if (sub.stream === stream) this.detachStream(sub, stream, "client");
      },
    };
  }

  /** Ends every open stream normally; the subscriptions and their queues stay. */
  endStreams(): void {
    for (const sub of [...this.streaming]) if (sub.stream) this.detachStream(sub, sub.stream, "shutdown");
  }

  /**
   * Deletes subscriptions idle for longer than the TTL: no stream, or one whose client has not read since.
   * Runs on a timer; public for tests.
   */
  sweep(): void {
    for (const sub of [...this.subs.values()]) if (this.expired(sub)) this.remove(sub, "expired");
  }

  /** Closes streams whose client has read nothing for the stall timeout. Runs on a timer; public for tests. */
  closeStalled(): void {
    const cutoff = this.now() - this.config.limits.sseStallTimeoutMs;
    for (const sub of [...this.streaming]) {
      const stream = sub.stream;
      if (stream?.blocked && stream.blockedSinceMs <= cutoff) {
        log.info(
          { subscription: shortId(sub.id), stalled_ms: this.now() - stream.blockedSinceMs },
          "Closing a stream whose client stopped reading",
        );
        this.detachStream(sub, stream, "stalled");
      }
    }
  }

  private expired(sub: Subscription): boolean {
    const idle = !sub.stream || sub.stream.blocked;
    return idle && sub.lastActivityMs <= this.now() - this.config.subscriptionTtlSeconds * 1000;
  }

  /** Stops listening, ends every stream and frees every subscription (process shutdown). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.stallTimer);
    this.stopFeed();
    for (const sub of [...this.subs.values()]) this.remove(sub, "shutdown");
  }

  private onChanges(changes: readonly ValueChange[]): void {
    if (this.closed) return;
    let delta = 0;
    let dropped = 0;
    for (const change of changes) {
      const targets = this.index.get(change.elementId);
      if (targets === undefined) continue;
      // One object shared by every queue: fan-out costs a reference per subscription, not a copy.
      const update: SubscriptionUpdate = {
        elementId: change.elementId,
        value: change.vqt.value,
        quality: change.vqt.quality,
        timestamp: change.vqt.timestamp,
      };
      updateBytes.set(
        update,
        UPDATE_FRAMING_BYTES +
          change.elementId.length +
          change.vqt.timestamp.length +
          (JSON.stringify(change.vqt.value)?.length ?? 4),
      );
      for (const sub of targets) {
        if (!sub.access.allows(change.elementId)) continue;
        const lost = this.enqueue(sub, update);
        dropped += lost;
        delta += 1 - lost;
        if (sub.stream) this.scheduleFlush(sub, sub.stream);
      }
    }
    if (dropped > 0) {
      this.droppedTotal += dropped;
      subscriptionDroppedUpdates.inc(dropped);
    }
    this.adjustQueued(delta);
  }

  /**
   * Appends one update, dropping the oldest first while the queue is full by count or bytes, or the
   * queues together hold the process's byte budget. Returns how many were dropped (the update itself when
   * it alone does not fit).
   */
  private enqueue(sub: Subscription, update: SubscriptionUpdate): number {
    const size = updateBytes.get(update) ?? 0;
    const { subscriptionQueueMaxBytes, subscriptionQueuesMaxBytes } = this.config.limits;
    const full = () =>
      sub.queued >= this.config.subscriptionQueueMax ||
      sub.queuedBytes + size > subscriptionQueueMaxBytes ||
      this.queuedBytesTotal + size > subscriptionQueuesMaxBytes;
    let dropped = 0;
    while (sub.queued > 0 && full()) {
      const oldest = sub.batches[0];
      if (oldest) {
        // A batch goes as a whole: an issued sequence number either carries everything it carried or is
        // gone, which keeps the client's gap arithmetic true.
        sub.batches.shift();
        sub.batchedCount -= oldest.updates.length;
        this.countBytes(sub, -bytesOf(oldest.updates));
        dropped += oldest.updates.length;
      } else {
        this.countBytes(sub, -(updateBytes.get(sub.pending.dropOldest()) ?? 0));
        sub.pendingLost = true;
        dropped++;
      }
    }
    if (full()) {
      // Larger than the whole queue may hold, or other queues hold the process budget.
      sub.pendingLost = true;
      sub.droppedSinceReport += dropped + 1;
      return dropped + 1;
    }
    sub.pending.push(update);
    this.countBytes(sub, size);
    sub.droppedSinceReport += dropped;
    return dropped;
  }

  private scheduleFlush(sub: Subscription, stream: ActiveStream): void {
    if (stream.blocked || stream.flushScheduled) return;
    stream.flushScheduled = true;
    // Deferred so that one write's changes (and a burst within the same turn) go out as one event, and the
    // writer's request does not wait for socket writes.
    setImmediate(() => {
      stream.flushScheduled = false;
      if (sub.stream === stream) this.flush(sub, stream);
    });
  }

  /** Moves queued updates into the transport until the queue is empty or the transport stops draining. */
  private flush(sub: Subscription, stream: ActiveStream): void {
    if (sub.droppedSinceReport > 0) {
      const note = `dropped ${sub.droppedSinceReport} updates: the subscription queue holds at most ${this.config.subscriptionQueueMax}`;
      sub.droppedSinceReport = 0;
      if (!stream.sink.comment(note)) this.block(stream);
    }
    let delta = 0;
    while (!stream.blocked && sub.queued > 0) {
      let chunk: SubscriptionUpdate[];
      const batch = sub.batches[0];
      if (batch) {
        // Batches a sync returned but nobody acknowledged go first: the stream has no acknowledgement, and
        // a duplicate is better than a silent loss at the hand-over from sync to stream.
        chunk = batch.updates.slice(0, EVENT_MAX_UPDATES);
        // Batch objects may still be referenced by a sync answer being serialized: replace, never mutate.
        if (chunk.length === batch.updates.length) sub.batches.shift();
        else
          sub.batches[0] = {
            sequenceNumber: batch.sequenceNumber,
            updates: batch.updates.slice(chunk.length),
          };
        sub.batchedCount -= chunk.length;
      } else {
        chunk = sub.pending.take(EVENT_MAX_UPDATES);
      }
      delta -= chunk.length;
      this.countBytes(sub, -bytesOf(chunk));
      if (traceDelivery(shortId(sub.id), chunk.length, () => stream.sink.deliver(chunk)))
        sub.lastActivityMs = this.now();
      else this.block(stream);
    }
    if (sub.pending.length === 0) sub.pendingLost = false;
    this.adjustQueued(delta);
  }

  private block(stream: ActiveStream): void {
    if (stream.blocked) return;
    stream.blocked = true;
    stream.blockedSinceMs = this.now();
  }

  private detachStream(sub: Subscription, stream: ActiveStream, reason: StreamEnd): void {
    sub.stream = null;
    this.streaming.delete(sub);
    sseStreamsOpen.dec();
    sseStreamsClosed.inc({ reason });
    // The TTL runs from the moment the last stream went away, or, for a stream that stalled, from the last
    // moment its client read: a client that stops reading does not keep its subscription alive.
    if (reason !== "stalled") sub.lastActivityMs = this.now();
    if (reason === "stalled" || reason === "expired") stream.sink.abort();
    else if (reason !== "client") stream.sink.end();
  }

  private heartbeat(): void {
    for (const sub of this.streaming) {
      const stream = sub.stream;
      if (stream && !stream.blocked && !stream.sink.comment("keep-alive")) this.block(stream);
    }
  }

  private addInterest(sub: Subscription, elementId: string): void {
    const count = sub.interest.get(elementId) ?? 0;
    sub.interest.set(elementId, count + 1);
    if (count > 0) return;
    let set = this.index.get(elementId);
    if (!set) {
      set = new Set();
      this.index.set(elementId, set);
    }
    set.add(sub);
  }

  private removeInterest(sub: Subscription, elementId: string): void {
    const count = sub.interest.get(elementId) ?? 0;
    if (count > 1) {
      sub.interest.set(elementId, count - 1);
      return;
    }
    sub.interest.delete(elementId);
    this.unindex(sub, elementId);
  }

  private unindex(sub: Subscription, elementId: string): void {
    const set = this.index.get(elementId);
    if (!set) return;
    set.delete(sub);
    if (set.size === 0) this.index.delete(elementId);
  }

  /** The subscription if it exists, belongs to the client and has not expired; otherwise undefined. */
  private lookup(clientId: string, subscriptionId: unknown): Subscription | undefined {
    if (typeof subscriptionId !== "string") return undefined;
    const sub = this.subs.get(subscriptionId);
    // Another client's subscription answers exactly like a missing one.
    if (!sub || sub.clientId !== clientId) return undefined;
    if (this.expired(sub)) {
      this.remove(sub, "expired");
      return undefined;
    }
    return sub;
  }

  private owned(access: Access, clientId: unknown, subscriptionId: unknown): Subscription {
    const client = ownedClientId(access, requireClientId(clientId));
    const sub = this.lookup(client, subscriptionId);
    if (!sub) throw new I3xError(404, subscriptionNotFound(String(subscriptionId)));
    sub.access = access;
    return sub;
  }

  private remove(sub: Subscription, reason: "deleted" | "expired" | "shutdown"): void {
    if (sub.deleted) return;
    sub.deleted = true;
    if (sub.stream) this.detachStream(sub, sub.stream, reason);
    for (const elementId of sub.interest.keys()) this.unindex(sub, elementId);
    sub.interest.clear();
    sub.registrations.clear();
    this.adjustQueued(-sub.queued);
    this.countBytes(sub, -sub.queuedBytes);
    sub.pending.clear();
    sub.batches = [];
    sub.batchedCount = 0;
    this.subs.delete(sub.id);
    const held = (this.perClient.get(sub.clientId) ?? 1) - 1;
    if (held > 0) this.perClient.set(sub.clientId, held);
    else this.perClient.delete(sub.clientId);
    if (sub.owner !== undefined) {
      const owned = (this.perOwner.get(sub.owner) ?? 1) - 1;
      if (owned > 0) this.perOwner.set(sub.owner, owned);
      else this.perOwner.delete(sub.owner);
    }
    subscriptionsActive.dec();
    if (reason === "expired") log.info({ subscription: shortId(sub.id) }, "Subscription expired");
    else log.debug({ subscription: shortId(sub.id), reason }, "Subscription removed");
  }

  private adjustQueued(delta: number): void {
    if (delta === 0) return;
    this.queuedTotal += delta;
    if (delta > 0) subscriptionQueuedUpdates.inc(delta);
    else subscriptionQueuedUpdates.dec(-delta);
  }

  private countBytes(sub: Subscription, delta: number): void {
    if (delta === 0) return;
    sub.queuedBytes += delta;
    this.queuedBytesTotal += delta;
    subscriptionQueuedBytes.set(this.queuedBytesTotal);
  }

  private assertOpen(): void {
    if (this.closed) throw new I3xError(503, "The server is shutting down");
  }
}

/** `clientId` must be a non-blank string on every subscription call (the guide: 400 otherwise). */
function requireClientId(clientId: unknown): string {
  if (typeof clientId !== "string" || clientId.trim() === "") {
    throw new I3xError(400, "clientId is required: a non-empty string identifying the client");
  }
  return clientId;
}

/**
 * The client a subscription belongs to: with a key, `<key id>~<clientId>`, so clients of different keys
 * never meet and a subscription id is useless with another key (the guide's "another clientId behaves as
 * if the subscription did not exist", extended to keys).
 */
function ownedClientId(access: Access, clientId: string): string {
  return access.owner === undefined ? clientId : `${access.owner}~${clientId}`;
}

/** Logs carry a prefix only: the full id is half of what grants access to a subscription. */
function shortId(id: string): string {
  return `${id.slice(0, 6)}…`;
}
