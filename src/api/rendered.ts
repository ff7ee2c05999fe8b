import type { FastifyReply } from "fastify";
import { type BulkItem, bulkBody, type IdKey } from "../domain/errors.js";
import type { AnswerSources } from "../services/answers.js";

/** What Fastify sets for a body its serializer wrote; a rendered body must not differ in anything. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/*
 * The one place answers are kept by identity (docs/adr/010). The rule: a piece of a response is kept by the
 * cached object the service made it from (its source, `AnswerSources`), which the cache never modifies, so
 * the same object means the same content; it is rendered by the route's own response serializer, so the
 * schema still decides the bytes, and held weakly, so a source the cache replaced takes its bytes with it.
 */

/** Whole response bodies kept by the source of the whole answer (a cached listing). */
export class RenderedBodies {
  private readonly bodies = new WeakMap<object, Buffer>();

  /** The bytes of `body()` as the route's serializer writes them, for `reply` to send. */
  send(reply: FastifyReply, source: object, body: () => unknown): Buffer {
    let bytes = this.bodies.get(source);
    if (bytes === undefined) {
      bytes = Buffer.from(serialized(reply, body()));
      this.bodies.set(source, bytes);
    }
    reply.type(JSON_CONTENT_TYPE);
    return bytes;
  }
}

/**
 * Bulk bodies whose items all succeeded and all have a source. Each item is rendered once, as the only
 * item of a bulk body and cut out of it, and kept by its source; a response is the envelope around those
 * pieces. The bytes are what the serializer would write for the whole body: a JSON array is its items
 * joined by commas, and the cut is checked against the envelope.
 */
export class RenderedBulk {
  private readonly items = new WeakMap<object, { id: string; text: string }>();
  private envelope: { head: string; tail: string } | undefined;

  constructor(private readonly key: IdKey) {}

  /** The body for `items`, or `undefined` when one cannot be sent this way: the caller sends those as usual. */
  send(reply: FastifyReply, items: readonly BulkItem<unknown>[], sources: AnswerSources): string | undefined {
    if (this.envelope === undefined) this.envelope = this.cutEnvelope(reply);
    const envelope = this.envelope;
    let body = envelope.head;
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const source = sources[i];
      if (!item.success || source === undefined) return undefined;
      let rendered = this.items.get(source);
      if (rendered === undefined || rendered.id !== item.id) {
        const text = this.renderItem(reply, envelope, item);
        if (text === undefined) return undefined;
        rendered = { id: item.id, text };
        this.items.set(source, rendered);
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
    item: BulkItem<unknown>,
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
