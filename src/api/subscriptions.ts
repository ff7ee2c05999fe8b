import type { ServerResponse } from "node:http";
import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { successBody } from "../domain/errors.js";
import { ownerOf } from "../security/quotas.js";
import type { StreamHandle, SubscriptionUpdate, UpdateSink } from "../services/subscriptions.js";
import type { AppDeps } from "./deps.js";
import { sendBulk } from "./reply.js";
import { bulk, elementIds, failure, maxDepth, quality, responses, success, timestamp } from "./schemas.js";

type Schema = Record<string, unknown>;

const str = { type: "string" } as const;
const anyValue = { description: "Any JSON value" } as const;
const nullResult = { type: "null" } as const;

const clientId = {
  type: "string",
  minLength: 1,
  maxLength: 4096,
  description: "Identifies the client; required on every subscription call",
} as const;
const subscriptionId = { type: "string", minLength: 1, maxLength: 256 } as const;

function subscriptionIds(maxItems: number): Schema {
  return { type: "array", minItems: 1, maxItems, items: subscriptionId };
}

function body(properties: Record<string, unknown>, required: string[]): Schema {
  return { type: "object", properties: { clientId, ...properties }, required: ["clientId", ...required] };
}

const update = {
  type: "object",
  properties: {
    elementId: str,
    value: anyValue,
    quality,
    timestamp,
  },
  required: ["elementId", "value", "quality", "timestamp"],
} as const;

const syncBatch = {
  type: "object",
  properties: { sequenceNumber: { type: "integer" }, updates: { type: "array", items: update } },
  required: ["sequenceNumber", "updates"],
} as const;

const created = {
  type: "object",
  properties: { clientId: str, subscriptionId: str, displayName: str },
  required: ["clientId", "subscriptionId", "displayName"],
} as const;

const detail = {
  type: "object",
  properties: {
    subscriptionId: str,
    displayName: str,
    monitoredObjects: {
      type: "array",
      items: {
        type: "object",
        properties: { elementId: str, maxDepth: { type: "integer" } },
        required: ["elementId", "maxDepth"],
      },
    },
  },
  required: ["subscriptionId", "displayName", "monitoredObjects"],
} as const;

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  // nginx and similar proxies buffer responses unless told not to; a buffered stream delivers nothing.
  "x-accel-buffering": "no",
  // A stream's connection is not reused: when the stream ends (take-over, delete, shutdown) the socket goes
  // with it, so a server shutdown never waits for an idle keep-alive socket.
  connection: "close",
} as const;

/**
 * The SSE end of a subscription stream. The response is taken over from Fastify (`reply.hijack()`) only
 * when the first byte is written, so a 404 for an unknown subscription still takes the normal error path.
 * Each delivery is one event: `data: <JSON array of updates>\n\n`. No compression: the stream bypasses
 * Fastify's onSend hooks, where @fastify/compress works.
 */
class SseSink implements UpdateSink {
  private readonly res: ServerResponse;

  constructor(private readonly reply: FastifyReply) {
    this.res = reply.raw;
  }

  open(): void {
    if (this.res.headersSent) return;
    this.reply.hijack();
    const headers = { ...this.reply.getHeaders(), ...SSE_HEADERS };
    this.res.writeHead(200, headers as Record<string, string>);
    this.res.flushHeaders();
  }

  attach(handle: StreamHandle): void {
    this.res.on("drain", () => handle.resume());
    this.res.on("close", () => handle.close());
    // A write to a socket the client has just dropped must not crash the process; `close` follows.
    this.res.on("error", () => handle.close());
  }

  deliver(updates: readonly SubscriptionUpdate[]): boolean {
    this.open();
    if (this.res.destroyed) return false;
    return this.res.write(`data: ${JSON.stringify(updates)}\n\n`);
  }

  comment(text: string): boolean {
    this.open();
    if (this.res.destroyed) return false;
    return this.res.write(`: ${text}\n\n`);
  }

  end(): void {
    this.open();
    if (!this.res.writableEnded) this.res.end();
  }

  abort(): void {
    // What is buffered for a client that stopped reading would never be delivered: free it with the socket.
    this.res.destroy();
  }
}

/** The Subscribe methods: create, list, delete, register, unregister, sync and the SSE stream. */
export const subscriptionRoutes: FastifyPluginAsync<AppDeps> = async (app, { services, config }) => {
  const subscriptions = services.subscriptions;
  const tags = ["Subscribe"];

  // Streams never end on their own: end them before the server waits for its connections to close.
  app.addHook("preClose", async () => subscriptions.endStreams());
  app.addHook("onClose", async () => subscriptions.close());

  app.post<{ Body: { clientId: string; displayName?: string | null } }>(
    "/subscriptions",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Create a subscription scoped to a client",
        body: body({ displayName: { type: ["string", "null"], maxLength: 256 } }, []),
        response: responses(success(created)),
      },
    },
    async (request) => {
      const { clientId, displayName } = request.body;
      return successBody(subscriptions.create(request.access, clientId, displayName, ownerOf(request)));
    },
  );

  app.post<{ Body: { clientId: string; subscriptionIds: string[] } }>(
    "/subscriptions/list",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Subscriptions by id, with their monitored objects",
        body: body({ subscriptionIds: subscriptionIds(config.maxBulkItems) }, ["subscriptionIds"]),
        response: responses(bulk("subscriptionId", detail)),
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionIds } = request.body;
      return sendBulk(reply, "subscriptionId", {
        items: subscriptions.list(request.access, clientId, subscriptionIds),
      });
    },
  );

  app.post<{ Body: { clientId: string; subscriptionIds: string[] } }>(
    "/subscriptions/delete",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Delete subscriptions with their queues and streams",
        body: body({ subscriptionIds: subscriptionIds(config.maxBulkItems) }, ["subscriptionIds"]),
        response: responses(bulk("subscriptionId", nullResult)),
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionIds } = request.body;
      return sendBulk(reply, "subscriptionId", {
        items: subscriptions.delete(request.access, clientId, subscriptionIds),
      });
    },
  );

  app.post<{ Body: { clientId: string; subscriptionId: string; elementIds: string[]; maxDepth?: number } }>(
    "/subscriptions/register",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Start monitoring objects (and their components up to maxDepth)",
        body: body({ subscriptionId, elementIds: elementIds(config.maxBulkItems), maxDepth }, [
          "subscriptionId",
          "elementIds",
        ]),
        response: responses(bulk("elementId", nullResult), { partial: true }),
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionId, elementIds, maxDepth } = request.body;
      return sendBulk(
        reply,
        "elementId",
        await subscriptions.register(request.access, clientId, subscriptionId, elementIds, maxDepth),
      );
    },
  );

  app.post<{ Body: { clientId: string; subscriptionId: string; elementIds: string[] } }>(
    "/subscriptions/unregister",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Stop monitoring objects; updates already queued stay",
        body: body({ subscriptionId, elementIds: elementIds(config.maxBulkItems) }, [
          "subscriptionId",
          "elementIds",
        ]),
        response: responses(bulk("elementId", nullResult)),
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionId, elementIds } = request.body;
      return sendBulk(reply, "elementId", {
        items: await subscriptions.unregister(request.access, clientId, subscriptionId, elementIds),
      });
    },
  );

  app.post<{ Body: { clientId: string; subscriptionId: string; lastSequenceNumber?: number | null } }>(
    "/subscriptions/sync",
    {
      config: { scope: "read" },
      schema: {
        tags,
        summary: "Acknowledge batches up to lastSequenceNumber and return every unacknowledged batch",
        body: body(
          {
            subscriptionId,
            lastSequenceNumber: {
              type: ["integer", "null"],
              description:
                "Highest sequenceNumber received; -1 clears the whole queue; omit on the first call",
            },
          },
          ["subscriptionId"],
        ),
        response: responses(success({ type: "array", items: syncBatch }), { partial: true }),
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionId, lastSequenceNumber } = request.body;
      const outcome = subscriptions.sync(request.access, clientId, subscriptionId, lastSequenceNumber);
      if (outcome.loss) reply.code(206);
      return successBody(outcome.batches, outcome.loss);
    },
  );

  app.post<{ Body: { clientId: string; subscriptionId: string } }>(
    "/subscriptions/stream",
    {
      config: { scope: "read", stream: true },
      schema: {
        tags,
        summary: "Server-Sent Events: queued updates first, then changes as they happen",
        description:
          "Each event is `data: <JSON array of {elementId, value, quality, timestamp}>`. Comment lines " +
          "(`: keep-alive`) keep proxies from closing an idle stream. A new stream on the same subscription " +
          "ends this one normally.",
        body: body({ subscriptionId }, ["subscriptionId"]),
        response: {
          200: {
            description: "An SSE stream (text/event-stream)",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          "4xx": failure,
          "5xx": failure,
        },
      },
    },
    async (request, reply) => {
      const { clientId, subscriptionId } = request.body;
      const sink = new SseSink(reply);
      const handle = subscriptions.openStream(request.access, clientId, subscriptionId, sink);
      sink.open();
      sink.attach(handle);
      // The client may have gone while the queued updates were written.
      if (reply.raw.destroyed) handle.close();
      return reply;
    },
  );
};
