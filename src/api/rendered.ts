import type { FastifyReply } from "fastify";
import { type BulkItem, bulkBody, type IdKey } from "../domain/errors.js";

/** What Fastify sets for a body its serializer wrote; a rendered body must not differ in anything. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/**
 * Response bodies that stay the same as long as their source object does (a cached listing is the same
 * array until the model changes), rendered once by the route's own response serializer and then sent as
 * those bytes: the schema still decides what reaches the wire, and a repeated read costs no serializing,
 * string building or UTF-8 encoding. Held weakly, so a listing that was replaced takes its body with it.
 */
export class RenderedBodies<Source extends object> {
  private readonly bodies = new WeakMap<Source, Buffer>();

  /** The bytes of `body(source)` as the route's serializer writes them, for `reply` to send. */
  send(reply: FastifyReply, source: Source, body: (source: Source) => unknown): Buffer {
    let bytes = this.bodies.get(source);
    if (bytes === undefined) {
      bytes = Buffer.from(serialized(reply, body(source)));
      this.bodies.set(source, bytes);
    }
    reply.type(JSON_CONTENT_TYPE);
    return bytes;
  }
}

/**
 * Bulk bodies whose items all succeeded and whose results are cached objects that never change (a cached
 * value is replaced, not modified, when it changes). Each item is rendered once by the route's own
 * serializer, as the only item of a bulk body and cut out of it, and kept while its result object lives;
 * a response is the envelope around those pieces. The bytes are what the serializer would write for the
 * whole body: a JSON array is its items joined by commas, and the cut is checked against the envelope.
 */
export class RenderedBulk {
  private readonly items = new WeakMap<object, { id: string; text: string }>();
  private envelope: { head: string; tail: string } | undefined;

  constructor(private readonly key: IdKey) {}

  /** The body for `items`, or `undefined` when an item failed: the caller sends those as usual. */
  send(reply: FastifyReply, items: readonly BulkItem<object>[]): string | undefined {
    if (this.envelope === undefined) this.envelope = this.cutEnvelope(reply);
    const envelope = this.envelope;
    let body = envelope.head;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!item.success) return undefined;
      let rendered = this.items.get(item.result);
      if (rendered === undefined || rendered.id !== item.id) {
        const text = this.renderItem(reply, envelope, item);
        if (text === undefined) return undefined;
        rendered = { id: item.id, text };
        this.items.set(item.result, rendered);
      }
      body += i === 0 ? rendered.text : `,${rendered.text}`;
    }
    reply.type(JSON_CONTENT_TYPE);
    return body + envelope.tail;
  }

  private cutEnvelope(reply: FastifyReply): { head: string; tail: string } {
    const empty = serialized(reply, bulkBody(this.key, []));
    const at = empty.lastIndexOf("[]") + 1;
    return { head: empty.slice(0, at), tail: empty.slice(at) };
  }

  private renderItem(
    reply: FastifyReply,
    { head, tail }: { head: string; tail: string },
    item: BulkItem<object>,
  ): string | undefined {
    const alone = serialized(reply, bulkBody(this.key, [item]));
    if (!alone.startsWith(head) || !alone.endsWith(tail) || head.length === 0) return undefined;
    return alone.slice(head.length, alone.length - tail.length);
  }
}

function serialized(reply: FastifyReply, body: unknown): string {
  const out = reply.serialize(body);
  return typeof out === "string" ? out : Buffer.from(out as Uint8Array).toString("utf8");
}
