import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { Access } from "../../src/domain/access.js";
import { LocalChangeFeed } from "../../src/domain/changes.js";
import { I3xError } from "../../src/domain/errors.js";
import type { ObjectRecord, Relationship } from "../../src/domain/model.js";
import { setRootLogger } from "../../src/observability/logger.js";
import {
  sseStreamsOpen,
  subscriptionDroppedUpdates,
  subscriptionQueuedUpdates,
  subscriptionsActive,
} from "../../src/observability/metrics.js";
import {
  type StreamHandle,
  SubscriptionService,
  type SubscriptionSettings,
  type SubscriptionUpdate,
  type UpdateSink,
} from "../../src/services/subscriptions.js";
import type { Store } from "../../src/store/store.js";

const everything = Access.everything;

// The service logic on its own, with a small in-memory model: machine ⊃ spindle ⊃ bearing (HasComponent),
// plus two independent sensors. HTTP behaviour is covered in test/subscriptions/http.test.ts.

function object(elementId: string, isComposition = false): ObjectRecord {
  return {
    elementId,
    displayName: elementId,
    typeElementId: "T",
    parentId: null,
    isComposition,
    isExtended: false,
  };
}

const OBJECTS = new Map<string, ObjectRecord>(
  [object("machine", true), object("spindle", true), object("bearing"), object("s1"), object("s2")].map(
    (o) => [o.elementId, o],
  ),
);
const EDGES: Relationship[] = [
  { sourceId: "machine", relationshipType: "HasComponent", targetId: "spindle" },
  { sourceId: "spindle", relationshipType: "HasComponent", targetId: "bearing" },
  { sourceId: "spindle", relationshipType: "ComponentOf", targetId: "machine" },
  { sourceId: "bearing", relationshipType: "ComponentOf", targetId: "spindle" },
];

const fakeStore = {
  async getObjects(ids: readonly string[]) {
    return new Map(ids.filter((id) => OBJECTS.has(id)).map((id) => [id, OBJECTS.get(id) as ObjectRecord]));
  },
  async getRelationships(ids: readonly string[], type?: string) {
    return EDGES.filter(
      (e) => ids.includes(e.sourceId) && (type === undefined || e.relationshipType === type),
    );
  },
} as unknown as Store;

const SETTINGS: SubscriptionSettings = {
  subscriptionQueueMax: 10_000,
  subscriptionTtlSeconds: 600,
  maxSubscriptionsPerClient: 100,
  maxSubscriptions: 10_000,
  sseHeartbeatSeconds: 15,
  maxCompositionDepth: 32,
  limits: loadConfig({}).limits,
};

const open: SubscriptionService[] = [];
let clock = 1_000_000;

function setup(overrides: Partial<SubscriptionSettings> = {}) {
  const changes = new LocalChangeFeed();
  const service = new SubscriptionService({
    store: fakeStore,
    changes,
    config: { ...SETTINGS, ...overrides },
    now: () => clock,
  });
  open.push(service);
  let n = 0;
  const write = (elementId: string, value: unknown = ++n) =>
    changes.publish([
      { elementId, vqt: { value, quality: "Good", timestamp: `2025-01-01T00:00:${pad(n)}Z` } },
    ]);
  return { service, changes, write };
}

function pad(n: number): string {
  return String(n % 60).padStart(2, "0");
}

beforeAll(() => {
  setRootLogger("silent");
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

class FakeSink implements UpdateSink {
  events: SubscriptionUpdate[][] = [];
  comments: string[] = [];
  ended = false;
  accepting = true;
  handle?: StreamHandle;
  deliver(updates: readonly SubscriptionUpdate[]) {
    this.events.push([...updates]);
    return this.accepting;
  }
  comment(text: string) {
    this.comments.push(text);
    return this.accepting;
  }
  end() {
    this.ended = true;
  }
  aborted = false;
  abort() {
    this.aborted = true;
  }
  get values() {
    return this.events.flat().map((u) => u.value);
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

function status(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof I3xError) return err.status;
    throw err;
  }
  return undefined;
}

async function metric(m: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await m.get()).values[0]?.value ?? 0;
}

describe("SubscriptionService", () => {
  it("requires a non-blank string clientId on every call", async () => {
    const { service } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    for (const bad of [undefined, null, "", "   ", 42]) {
      expect(status(() => service.create(everything, bad))).toBe(400);
      expect(status(() => service.list(everything, bad, [subscriptionId]))).toBe(400);
      expect(status(() => service.delete(everything, bad, [subscriptionId]))).toBe(400);
      expect(status(() => service.sync(everything, bad, subscriptionId))).toBe(400);
      expect(status(() => service.openStream(everything, bad, subscriptionId, new FakeSink()))).toBe(400);
      await expect(service.register(everything, bad, subscriptionId, ["s1"])).rejects.toMatchObject({
        status: 400,
      });
      await expect(service.unregister(everything, bad, subscriptionId, ["s1"])).rejects.toMatchObject({
        status: 400,
      });
    }
  });

  it("issues unguessable, unique ids and defaults displayName to the id", () => {
    const { service } = setup();
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const created = service.create(everything, "c1", i === 0 ? "named" : undefined);
      expect(created.subscriptionId).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(created.displayName).toBe(i === 0 ? "named" : created.subscriptionId);
      ids.add(created.subscriptionId);
    }
    expect(ids.size).toBe(50);
  });

  it("treats another client's subscription exactly like a missing one", async () => {
    const { service } = setup();
    const { subscriptionId } = service.create(everything, "owner");
    const [foreign] = service.list(everything, "intruder", [subscriptionId]);
    const [missing] = service.list(everything, "intruder", ["no-such-id"]);
    expect(foreign).toMatchObject({ success: false, responseDetail: { status: 404 } });
    expect(missing).toMatchObject({ success: false, responseDetail: { status: 404 } });
    expect(service.delete(everything, "intruder", [subscriptionId])[0]).toMatchObject({ success: false });
    expect(status(() => service.sync(everything, "intruder", subscriptionId))).toBe(404);
    expect(status(() => service.openStream(everything, "intruder", subscriptionId, new FakeSink()))).toBe(
      404,
    );
    await expect(service.register(everything, "intruder", subscriptionId, ["s1"])).rejects.toMatchObject({
      status: 404,
    });
    // The owner still has it, untouched.
    expect(service.list(everything, "owner", [subscriptionId])[0]).toMatchObject({ success: true });
  });

  it("registers idempotently with per-item 404s and keeps the first maxDepth", async () => {
    const { service } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    const first = await service.register(everything, "c1", subscriptionId, ["s1", "nope", "s1"], 1);
    expect(first.items.map((i) => i.success)).toEqual([true, false, true]);
    expect(first.items[1]).toMatchObject({ responseDetail: { status: 404 } });
    const again = await service.register(everything, "c1", subscriptionId, ["s1", "s2"], 3);
    expect(again.items.every((i) => i.success)).toBe(true);
    const [listed] = service.list(everything, "c1", [subscriptionId]);
    expect(listed.success && listed.result.monitoredObjects).toEqual([
      { elementId: "s1", maxDepth: 1 },
      { elementId: "s2", maxDepth: 3 },
    ]);
  });

  it("follows HasComponent down to maxDepth and reports a server-limited cut as partial", async () => {
    const watched = async (maxDepth: number, limit = 32) => {
      const { service, write } = setup({ maxCompositionDepth: limit });
      const { subscriptionId } = service.create(everything, "c1");
      const outcome = await service.register(everything, "c1", subscriptionId, ["machine"], maxDepth);
      for (const id of ["machine", "spindle", "bearing", "s1"]) write(id, id);
      const { batches } = service.sync(everything, "c1", subscriptionId);
      return { seen: batches.flatMap((b) => b.updates.map((u) => u.elementId)), partial: outcome.partial };
    };
    expect((await watched(1)).seen).toEqual(["machine"]);
    expect((await watched(2)).seen).toEqual(["machine", "spindle"]);
    expect((await watched(3)).seen).toEqual(["machine", "spindle", "bearing"]);
    const unlimited = await watched(0);
    expect(unlimited.seen).toEqual(["machine", "spindle", "bearing"]);
    expect(unlimited.partial).toBeUndefined();
    const cut = await watched(0, 1);
    expect(cut.seen).toEqual(["machine", "spindle"]);
    expect(cut.partial).toMatchObject({ status: 206 });
  });

  it("runs the sync life cycle of the guide", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1", "s2"]);
    expect(service.sync(everything, "c1", subscriptionId).batches).toEqual([]);

    write("s1", 1);
    write("s2", 2);
    const first = service.sync(everything, "c1", subscriptionId);
    expect(first.batches.map((b) => b.sequenceNumber)).toEqual([1]);
    expect(first.batches[0].updates.map((u) => u.value)).toEqual([1, 2]);

    // No acknowledgement: batch 1 comes again, next to the new batch 2.
    write("s1", 3);
    const second = service.sync(everything, "c1", subscriptionId);
    expect(second.batches.map((b) => b.sequenceNumber)).toEqual([1, 2]);

    // Acknowledging 1 removes it; nothing new gives no new batch.
    expect(service.sync(everything, "c1", subscriptionId, 1).batches.map((b) => b.sequenceNumber)).toEqual([
      2,
    ]);
    expect(service.sync(everything, "c1", subscriptionId, 2).batches).toEqual([]);

    write("s2", 4);
    expect(service.sync(everything, "c1", subscriptionId, 2).batches.map((b) => b.sequenceNumber)).toEqual([
      3,
    ]);
    write("s2", 5);
    expect(service.sync(everything, "c1", subscriptionId, -1).batches).toEqual([]);
    expect(service.sync(everything, "c1", subscriptionId).batches).toEqual([]);
    expect(service.stats().queued).toBe(0);
    write("s1", 6);
    expect(service.sync(everything, "c1", subscriptionId).batches).toEqual([
      { sequenceNumber: 4, updates: [expect.anything()] },
    ]);
  });

  it("clears nothing for an invalid lastSequenceNumber", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    write("s1");
    service.sync(everything, "c1", subscriptionId);
    for (const bad of [2, 99, -2, 1.5, Number.MAX_SAFE_INTEGER + 2]) {
      expect(
        service.sync(everything, "c1", subscriptionId, bad).batches.map((b) => b.sequenceNumber),
      ).toEqual([1]);
    }
    expect(service.sync(everything, "c1", subscriptionId, null).batches.map((b) => b.sequenceNumber)).toEqual(
      [1],
    );
  });

  it("drops the oldest on overflow, counts it, and leaves a sequence gap for the loss", async () => {
    const { service, write } = setup({ subscriptionQueueMax: 100 });
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    const droppedBefore = await metric(subscriptionDroppedUpdates);
    for (let i = 1; i <= 1000; i++) write("s1", i);
    expect(service.stats()).toMatchObject({ queued: 100, dropped: 900 });
    expect((await metric(subscriptionDroppedUpdates)) - droppedBefore).toBe(900);

    const lossy = service.sync(everything, "c1", subscriptionId);
    expect(lossy.loss).toMatchObject({ status: 206, title: "Updates dropped due to queue overflow" });
    expect(lossy.batches).toHaveLength(1);
    // Number 1 carried the lost updates: the client's gap is 0+1 … 2-1.
    expect(lossy.batches[0].sequenceNumber).toBe(2);
    expect(lossy.batches[0].updates.map((u) => u.value)).toEqual(
      Array.from({ length: 100 }, (_, i) => 901 + i),
    );

    // Reported once; the next answer is a plain 200 again.
    expect(service.sync(everything, "c1", subscriptionId, 2).loss).toBeUndefined();
  });

  it("drops an unacknowledged batch as a whole so its number disappears", async () => {
    const { service, write } = setup({ subscriptionQueueMax: 4 });
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    for (let i = 1; i <= 3; i++) write("s1", i);
    expect(service.sync(everything, "c1", subscriptionId).batches.map((b) => b.sequenceNumber)).toEqual([1]);
    for (let i = 4; i <= 5; i++) write("s1", i);
    const outcome = service.sync(everything, "c1", subscriptionId);
    expect(outcome.loss).toBeDefined();
    expect(outcome.batches).toEqual([{ sequenceNumber: 2, updates: [expect.anything(), expect.anything()] }]);
    expect(outcome.batches[0].updates.map((u) => u.value)).toEqual([4, 5]);
  });

  it("keeps queued values after unregister but queues nothing new", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1", "machine"], 2);
    write("s1", "before");
    write("spindle", "component");
    const result = await service.unregister(everything, "c1", subscriptionId, [
      "s1",
      "machine",
      "s2",
      "nope",
    ]);
    expect(result.map((i) => i.success)).toEqual([true, true, true, false]);
    write("s1", "after");
    write("spindle", "after");
    const values = service
      .sync(everything, "c1", subscriptionId)
      .batches.flatMap((b) => b.updates.map((u) => u.value));
    expect(values).toEqual(["before", "component"]);
  });

  it("keeps a component watched while another registration still covers it", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["machine"], 2);
    await service.register(everything, "c1", subscriptionId, ["spindle"], 1);
    await service.unregister(everything, "c1", subscriptionId, ["machine"]);
    write("spindle", "still");
    write("machine", "gone");
    const values = service
      .sync(everything, "c1", subscriptionId)
      .batches.flatMap((b) => b.updates.map((u) => u.value));
    expect(values).toEqual(["still"]);
  });

  it("streams queued updates first, then live ones, and refuses sync meanwhile", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    write("s1", 1);
    service.sync(everything, "c1", subscriptionId); // batch 1 stays unacknowledged
    write("s1", 2);
    const sink = new FakeSink();
    service.openStream(everything, "c1", subscriptionId, sink);
    expect(sink.values).toEqual([1, 2]);
    expect(status(() => service.sync(everything, "c1", subscriptionId))).toBe(409);
    write("s1", 3);
    write("s1", 4);
    await nextTurn();
    expect(sink.values).toEqual([1, 2, 3, 4]);
    expect(service.stats().queued).toBe(0);
  });

  it("holds updates in the bounded queue while the transport is not draining", async () => {
    const { service, write } = setup({ subscriptionQueueMax: 10 });
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    const sink = new FakeSink();
    const handle = service.openStream(everything, "c1", subscriptionId, sink);
    write("s1", 1);
    sink.accepting = false;
    await nextTurn();
    expect(sink.values).toEqual([1]);
    for (let i = 2; i <= 30; i++) write("s1", i);
    await nextTurn();
    // Blocked: nothing more taken out, the queue stays at its bound.
    expect(sink.events).toHaveLength(1);
    expect(service.stats()).toMatchObject({ queued: 10, dropped: 19 });
    sink.accepting = true;
    handle.resume();
    expect(sink.comments[0]).toMatch(/^dropped 19 updates/);
    expect(sink.values).toEqual([1, ...Array.from({ length: 10 }, (_, i) => 21 + i)]);
    expect(service.stats().queued).toBe(0);
  });

  it("lets a new stream take over and ends the old one normally", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    const streamsBefore = await metric(sseStreamsOpen);
    const a = new FakeSink();
    const handleA = service.openStream(everything, "c1", subscriptionId, a);
    const b = new FakeSink();
    service.openStream(everything, "c1", subscriptionId, b);
    expect(a.ended).toBe(true);
    // The old transport's close callback arrives later and must not detach the new stream.
    handleA.close();
    expect((await metric(sseStreamsOpen)) - streamsBefore).toBe(1);
    write("s1", "live");
    await nextTurn();
    expect(a.values).toEqual([]);
    expect(b.values).toEqual(["live"]);
  });

  it("frees the stream at once when the client goes away", async () => {
    const { service, write } = setup();
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    const streamsBefore = await metric(sseStreamsOpen);
    const sink = new FakeSink();
    const handle = service.openStream(everything, "c1", subscriptionId, sink);
    expect(service.stats().streams).toBe(1);
    handle.close();
    expect(service.stats().streams).toBe(0);
    expect(await metric(sseStreamsOpen)).toBe(streamsBefore);
    write("s1", "queued again");
    expect(service.sync(everything, "c1", subscriptionId).batches).toHaveLength(1);
  });

  it("expires idle subscriptions, but never one with an open stream", async () => {
    const { service } = setup({ subscriptionTtlSeconds: 60 });
    const idle = service.create(everything, "c1").subscriptionId;
    const synced = service.create(everything, "c1").subscriptionId;
    const streamed = service.create(everything, "c1").subscriptionId;
    service.openStream(everything, "c1", streamed, new FakeSink());
    clock += 45_000;
    service.sync(everything, "c1", synced);
    clock += 30_000;
    service.sweep();
    expect(service.list(everything, "c1", [idle, synced, streamed]).map((i) => i.success)).toEqual([
      false,
      true,
      true,
    ]);
    clock += 60_000;
    // Expired but not yet swept: access alone already treats it as gone.
    expect(status(() => service.sync(everything, "c1", synced))).toBe(404);
    expect(service.stats().subscriptions).toBe(1);
  });

  it("closes a stream whose client stopped reading, and counts the stalled time toward the TTL", async () => {
    const { service, write } = setup({
      subscriptionTtlSeconds: 60,
      limits: { ...SETTINGS.limits, sseStallTimeoutMs: 5000 },
    });
    const stalled = service.create(everything, "c1").subscriptionId;
    await service.register(everything, "c1", stalled, ["s1"]);
    const sink = new FakeSink();
    service.openStream(everything, "c1", stalled, sink);
    sink.accepting = false;
    write("s1", 1);
    await nextTurn();
    clock += 4000;
    service.closeStalled();
    expect(sink.aborted).toBe(false);
    clock += 2000;
    service.closeStalled();
    expect(sink.aborted).toBe(true);
    expect(service.stats().streams).toBe(0);
    // 61 s after its client last read: expired, though its stream closed only 55 s ago.
    clock += 55_000;
    service.sweep();
    expect(service.stats().subscriptions).toBe(0);
  });

  it("expires a subscription whose open stream stopped reading, and drops that stream", async () => {
    const { service, write } = setup({ subscriptionTtlSeconds: 60 });
    const { subscriptionId } = service.create(everything, "c1");
    await service.register(everything, "c1", subscriptionId, ["s1"]);
    const sink = new FakeSink();
    service.openStream(everything, "c1", subscriptionId, sink);
    sink.accepting = false;
    write("s1", 1);
    await nextTurn();
    clock += 61_000;
    service.sweep();
    expect(service.stats().subscriptions).toBe(0);
    expect(sink.aborted).toBe(true);
  });

  it("limits subscriptions per client and in total with 429", () => {
    const { service } = setup({ maxSubscriptionsPerClient: 2, maxSubscriptions: 3 });
    service.create(everything, "a");
    const second = service.create(everything, "a").subscriptionId;
    expect(status(() => service.create(everything, "a"))).toBe(429);
    service.create(everything, "b");
    expect(status(() => service.create(everything, "c"))).toBe(429);
    service.delete(everything, "a", [second]);
    expect(service.create(everything, "a").subscriptionId).toBeTruthy();
  });

  it("keeps the gauges exact and returns them to zero on close", async () => {
    const before = {
      active: await metric(subscriptionsActive),
      queued: await metric(subscriptionQueuedUpdates),
      streams: await metric(sseStreamsOpen),
    };
    const { service, write } = setup({ subscriptionQueueMax: 5 });
    const a = service.create(everything, "c1").subscriptionId;
    const b = service.create(everything, "c1").subscriptionId;
    await service.register(everything, "c1", a, ["s1"]);
    await service.register(everything, "c1", b, ["s1"]);
    for (let i = 0; i < 8; i++) write("s1");
    const sink = new FakeSink();
    service.openStream(everything, "c1", b, sink);
    expect((await metric(subscriptionsActive)) - before.active).toBe(2);
    expect((await metric(subscriptionQueuedUpdates)) - before.queued).toBe(5);
    expect((await metric(sseStreamsOpen)) - before.streams).toBe(1);
    service.close();
    expect(sink.ended).toBe(true);
    expect(await metric(subscriptionsActive)).toBe(before.active);
    expect(await metric(subscriptionQueuedUpdates)).toBe(before.queued);
    expect(await metric(sseStreamsOpen)).toBe(before.streams);
  });
});
