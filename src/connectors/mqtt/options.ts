import type { JsonSchema, Quality } from "../../domain/model.js";
import { BROKER_OPTIONS_PROPERTIES, type BrokerOptions } from "./broker-options.js";
import type { QoS } from "./connection.js";

/** One mapping rule of an `mqtt` connector (docs/connectors.md#mqtt). */
export interface MqttRuleOptions {
  /** Topic pattern: MQTT levels, `{name}` / `{name#}` captures, `+` and `#`. */
  topic: string;
  qos?: QoS;
  /** Templates; `{name}` captures and `{topic}`, `{last}`, `{connector}`. */
  elementId?: string;
  displayName?: string;
  typeElementId?: string;
  /** Infer the type from payloads and widen it; defaults to true when `typeElementId` is not given. */
  inferType?: boolean;
  parentId?: string;
  /** Payload paths (payload-path.ts); `value` defaults to `$`, the whole payload. */
  value?: string;
  timestamp?: string;
  /** Unit of a numeric timestamp: milliseconds (default), seconds or microseconds since the epoch. */
  timestampUnit?: "ms" | "s" | "us";
  quality?: string;
  /** Payload quality values (as JSON text: `"192"`, `"true"`, `"ok"`) to i3X qualities. */
  qualityMap?: Record<string, Quality>;
  /** The value is a JSON object whose members become `HasComponent` children with their own values. */
  composition?: boolean;
  writable?: boolean;
  /** Template of the topic a written value is published to; defaults to `{topic}/set`. */
  commandTopic?: string;
  commandRetain?: boolean;
}

export interface MqttTypeOptions {
  elementId: string;
  displayName?: string;
  schema: JsonSchema;
}

export interface MqttOptions extends BrokerOptions {
  clean?: boolean;
  /** MQTT 5: how long the broker keeps a session that is not clean after a disconnect. */
  sessionExpirySeconds?: number;
  /**
   * Topic filters to subscribe to instead of the rules' own patterns, e.g. `plant/#` to count what no rule
   * maps (`unmatched`).
   */
  subscriptions?: (string | { topic: string; qos?: QoS })[];
  /** Default QoS of the rules' subscriptions. */
  qos?: QoS;
  /** Upper bound on the elements (objects) this connector creates; later new topics are refused. */
  maxElements?: number;
  /** Namespace of the types this connector declares or infers; defaults to `urn:i3xd:mqtt:<name>`. */
  namespaceUri?: string;
  types?: MqttTypeOptions[];
  rules: MqttRuleOptions[];
}

const QOS = { type: "integer", enum: [0, 1, 2] };
const TEMPLATE = { type: "string", minLength: 1, maxLength: 512 };
const PATH = { type: "string", minLength: 1, maxLength: 256 };
const QUALITY = { type: "string", enum: ["Good", "GoodNoData", "Bad", "Uncertain"] };

/** JSON schema (draft-07) of `options` for `kind: mqtt`. */
export const MQTT_OPTIONS_SCHEMA: Record<string, unknown> = {
  type: "object",
  additionalProperties: false,
  required: ["url", "rules"],
  properties: {
    ...BROKER_OPTIONS_PROPERTIES,
    clean: { type: "boolean" },
    sessionExpirySeconds: { type: "integer", minimum: 0, maximum: 4294967295 },
    subscriptions: {
      type: "array",
      minItems: 1,
      items: {
        oneOf: [
          { type: "string", minLength: 1, maxLength: 1024 },
          {
            type: "object",
            additionalProperties: false,
            required: ["topic"],
            properties: { topic: { type: "string", minLength: 1, maxLength: 1024 }, qos: QOS },
          },
        ],
      },
    },
    qos: QOS,
    maxElements: { type: "integer", minimum: 1 },
    namespaceUri: { type: "string", minLength: 1 },
    types: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["elementId", "schema"],
        properties: {
          elementId: { type: "string", minLength: 1, maxLength: 512 },
          displayName: { type: "string", minLength: 1 },
          schema: { type: "object" },
        },
      },
    },
    rules: {
      type: "array",
      minItems: 1,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["topic"],
        properties: {
          topic: { type: "string", minLength: 1, maxLength: 1024 },
          qos: QOS,
          elementId: TEMPLATE,
          displayName: TEMPLATE,
          typeElementId: TEMPLATE,
          inferType: { type: "boolean" },
          parentId: TEMPLATE,
          value: PATH,
          timestamp: PATH,
          timestampUnit: { type: "string", enum: ["ms", "s", "us"] },
          quality: PATH,
          qualityMap: { type: "object", additionalProperties: QUALITY },
          composition: { type: "boolean" },
          writable: { type: "boolean" },
          commandTopic: TEMPLATE,
          commandRetain: { type: "boolean" },
        },
      },
    },
  },
};
