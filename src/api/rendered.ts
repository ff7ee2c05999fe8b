import type { FastifyReply } from "fastify";

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

  /**
   * The bytes of `body(source)` as the route's serializer writes them, for `reply` to send. Only for
   * responses nothing changes between the handler and the serializer: a `preSerialization` hook never sees
   * them (see `seesWholeListing` for the one that filters listings).
   */
  send(reply: FastifyReply, source: Source, body: (source: Source) => unknown): Buffer {
    let bytes = this.bodies.get(source);
    if (bytes === undefined) {
      const rendered = reply.serialize(body(source));
      bytes = typeof rendered === "string" ? Buffer.from(rendered) : Buffer.from(rendered as Uint8Array);
      this.bodies.set(source, bytes);
    }
    reply.type(JSON_CONTENT_TYPE);
    return bytes;
  }
}
