import type { ConnectorContext } from "../connector.js";
import type { MqttConnectionOptions } from "./connection.js";

/**
 * The broker part of a connector's `options`, for every kind that speaks MQTT (`mqtt`, `sparkplug`):
 * the JSON schema fragment (draft-07) and the `MqttConnection` options it gives.
 */
export interface BrokerOptions {
  /** One broker URL or several, tried in turn after each loss. */
  url: string | string[];
  clientId?: string;
  username?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean };
  protocolVersion?: 4 | 5;
  keepaliveSeconds?: number;
  reconnect?: { minMs?: number; maxMs?: number };
  /** Larger payloads are refused (counted `invalid`, reason "payload too large"); each kind has its default. */
  maxPayloadBytes?: number;
}

export const BROKER_OPTIONS_PROPERTIES: Record<string, unknown> = {
  url: {
    oneOf: [
      { type: "string", pattern: "^(mqtts?|wss?)://" },
      { type: "array", minItems: 1, items: { type: "string", pattern: "^(mqtts?|wss?)://" } },
    ],
  },
  clientId: { type: "string", minLength: 1, maxLength: 128 },
  username: { type: "string" },
  password: { type: "string" },
  tls: {
    type: "object",
    additionalProperties: false,
    properties: {
      caFile: { type: "string" },
      certFile: { type: "string" },
      keyFile: { type: "string" },
      rejectUnauthorized: { type: "boolean" },
    },
  },
  protocolVersion: { type: "integer", enum: [4, 5] },
  keepaliveSeconds: { type: "integer", minimum: 0, maximum: 65535 },
  reconnect: {
    type: "object",
    additionalProperties: false,
    properties: {
      minMs: { type: "integer", minimum: 10, maximum: 600000 },
      maxMs: { type: "integer", minimum: 10, maximum: 3600000 },
    },
  },
  maxPayloadBytes: { type: "integer", minimum: 1, maximum: 268435455 },
};

/** What the schema cannot say about broker options: a backoff whose start exceeds its cap. */
export function brokerOptionsProblems(o: BrokerOptions): { field: string; problem: string }[] {
  const { minMs, maxMs } = o.reconnect ?? {};
  return minMs !== undefined && maxMs !== undefined && minMs > maxMs
    ? [{ field: "reconnect.minMs", problem: "must not exceed reconnect.maxMs" }]
    : [];
}

/** The connection options of these broker options; `defaults` fill what the kind decides itself. */
export function connectionOptions(
  o: BrokerOptions,
  defaults: { clientId: string; protocolVersion: 4 | 5; clean: boolean },
  will?: MqttConnectionOptions["will"],
): MqttConnectionOptions {
  return {
    urls: typeof o.url === "string" ? [o.url] : o.url,
    clientId: o.clientId ?? defaults.clientId,
    username: o.username,
    password: o.password,
    tls: o.tls,
    protocolVersion: o.protocolVersion ?? defaults.protocolVersion,
    clean: defaults.clean,
    keepaliveSeconds: o.keepaliveSeconds ?? 30,
    reconnect: { minMs: o.reconnect?.minMs ?? 500, maxMs: o.reconnect?.maxMs ?? 30_000 },
    ...(will ? { will } : {}),
  };
}

/** Counts a payload above `maxBytes` as `invalid` before anything decodes it; true when it was refused. */
export function refusedAsTooLarge(
  context: Pick<ConnectorContext, "count">,
  payload: Uint8Array,
  maxBytes: number,
): boolean {
  if (payload.length <= maxBytes) return false;
  context.count("invalid", 1, `payload too large (${payload.length} > ${maxBytes} bytes)`);
  return true;
}
