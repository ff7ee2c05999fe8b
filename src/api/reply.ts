import type { FastifyReply } from "fastify";
import { type BulkItem, bulkBody, type IdKey, type ResponseDetail } from "../domain/errors.js";

/** Sends a bulk body; a server limit that cut something short turns the status into 206 (the guide). */
export function sendBulk<T>(
  reply: FastifyReply,
  key: IdKey,
  outcome: { items: readonly BulkItem<T>[]; partial?: ResponseDetail },
) {
  if (outcome.partial) reply.code(206);
  return bulkBody(key, outcome.items, outcome.partial);
}
