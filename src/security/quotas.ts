import type { FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { failureBody } from "../domain/errors.js";
import { limitRejections } from "../observability/metrics.js";

/**
 * Shares of the process-wide limits. A limit that only the process enforces is one client's to take: with
 * enough clientIds, keys or addresses it holds every slot and everyone else gets 429. So each limit is
 * counted per API key (per client address when running open) and per address as well, with the process
 * total as the last guard; a 429 names the limit that was hit (and `limit_rejections_total{limit}` counts it).
 */

/** Whose share a request uses: its API key, or its client address when it has none. */
export function ownerOf(request: FastifyRequest): string {
  const p = request.principal;
  return p ? `key:${p.id}` : `ip:${request.ip}`;
}

/** Counts of something held, per holder (streams, connections). */
export class Holdings {
  private readonly held = new Map<string, number>();

  count(holder: string): number {
    return this.held.get(holder) ?? 0;
  }

  take(holder: string): void {
    this.held.set(holder, this.count(holder) + 1);
  }

  give(holder: string): void {
    const n = this.count(holder) - 1;
    if (n > 0) this.held.set(holder, n);
    else this.held.delete(holder);
  }
}

/** Open SSE streams: per key (or address when open), per address, and for the process. */
export class StreamShares {
  private readonly perOwner = new Holdings();
  private readonly perAddress = new Holdings();
  private open = 0;

  constructor(private readonly config: Pick<Config, "maxStreamsPerKey" | "limits">) {}

  /**
   * Takes a stream slot for the request until its response closes, or answers 429 and returns false.
   */
  admit(request: FastifyRequest, reply: FastifyReply): boolean {
    const owner = ownerOf(request);
    const address = request.ip;
    const { maxStreamsPerKey } = this.config;
    const { maxStreamsPerAddress, maxStreams } = this.config.limits;
    let refusal: [limit: string, detail: string] | undefined;
    if (this.perOwner.count(owner) >= maxStreamsPerKey) {
      refusal = [
        "streams_per_key",
        `At most ${maxStreamsPerKey} streams may be open at once per ${owner.startsWith("key:") ? "API key" : "client address"} (I3XD_MAX_STREAMS_PER_KEY); close one first`,
      ];
    } else if (this.perAddress.count(address) >= maxStreamsPerAddress) {
      refusal = [
        "streams_per_address",
        `At most ${maxStreamsPerAddress} streams may be open at once per client address (I3XD_MAX_STREAMS_PER_ADDRESS); close one first`,
      ];
    } else if (this.open >= maxStreams) {
      refusal = [
        "streams",
        `The server holds its maximum of ${maxStreams} open streams (I3XD_MAX_STREAMS); retry later`,
      ];
    }
    if (refusal !== undefined) {
      limitRejections.inc({ limit: refusal[0] });
      reply.code(429).send(failureBody(429, refusal[1]));
      return false;
    }
    this.perOwner.take(owner);
    this.perAddress.take(address);
    this.open++;
    reply.raw.once("close", () => {
      this.perOwner.give(owner);
      this.perAddress.give(address);
      this.open--;
    });
    return true;
  }
}
