/**
 * The `options` of a `kind: opcua` entry in the connectors file: the JSON schema the framework validates
 * them with, and the typed form with defaults applied. Documented in docs/connectors.md (OPC UA).
 */

export type SecurityModeName = "None" | "Sign" | "SignAndEncrypt";

export type Identity =
  | { type: "anonymous" }
  | { type: "username"; username: string; password: string }
  | { type: "certificate"; certificateFile: string; privateKeyFile: string };

export interface OpcuaOptions {
  endpointUrl: string;
  securityMode: SecurityModeName;
  /** An OPC UA security policy name (`None`, `Basic256Sha256`, `Aes128_Sha256_RsaOaep`, …). */
  securityPolicy: string;
  identity: Identity;
  applicationName: string;
  /** Accept a server certificate that is not in the PKI folder's trust list (it is then trusted). */
  trustServerCertificate: boolean;
  /** Where the browse starts; node ids in `nsu=` or `ns=` form. Default: the Objects folder. */
  startNodes: string[];
  /** Also map nodes of the standard namespace (http://opcfoundation.org/UA/). */
  includeStandardNamespace: boolean;
  /** Bounds the browse: nodes beyond this many are left out and counted as `invalid`. */
  maxNodes: number;
  /** Non-hierarchical references become relationships. */
  relationships: boolean;
  rebrowse: { onModelChange: boolean; intervalSeconds: number };
  subscription: {
    publishingIntervalMs: number;
    samplingIntervalMs: number;
    queueSize: number;
    deadband: { type: "none" | "absolute" | "percent"; value: number };
  };
  /** Write-back is allowed for variables whose access level permits it. */
  writable: boolean;
  /** `POST /objects/history` before what i3xd holds reads through with HistoryRead. */
  historyReadThrough: boolean;
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  /** Bounds on what one read, browse or monitor call asks of the server. */
  batchSize: number;
}

export const SECURITY_POLICIES = [
  "None",
  "Basic128Rsa15",
  "Basic256",
  "Basic256Sha256",
  "Aes128_Sha256_RsaOaep",
  "Aes256_Sha256_RsaPss",
] as const;

const positiveInteger = { type: "integer", minimum: 1 } as const;

export const optionsSchema: Record<string, unknown> = {
  $schema: "http://json-schema.org/draft-07/schema#",
  type: "object",
  additionalProperties: false,
  required: ["endpointUrl"],
  properties: {
    endpointUrl: { type: "string", pattern: "^opc\\.tcp://", maxLength: 2048 },
    securityMode: { enum: ["None", "Sign", "SignAndEncrypt"] },
    securityPolicy: { enum: [...SECURITY_POLICIES] },
    identity: {
      oneOf: [
        {
          type: "object",
          additionalProperties: false,
          required: ["type"],
          properties: { type: { const: "anonymous" } },
        },
        {
          type: "object",
          additionalProperties: false,
          required: ["type", "username", "password"],
          properties: {
            type: { const: "username" },
            username: { type: "string", minLength: 1 },
            password: { type: "string" },
          },
        },
        {
          type: "object",
          additionalProperties: false,
          required: ["type", "certificateFile", "privateKeyFile"],
          properties: {
            type: { const: "certificate" },
            certificateFile: { type: "string", minLength: 1 },
            privateKeyFile: { type: "string", minLength: 1 },
          },
        },
      ],
    },
    applicationName: { type: "string", minLength: 1, maxLength: 200 },
    trustServerCertificate: { type: "boolean" },
    startNodes: {
      type: "array",
      minItems: 1,
      maxItems: 1000,
      // OPC UA's text form of a node id: `i=85`, `ns=2;s=Line1`, `nsu=urn:acme:line1;s=Line1`.
      items: { type: "string", pattern: "^((nsu=[^;]+|ns=[0-9]+);)?[isgb]=.+$", maxLength: 4096 },
    },
    includeStandardNamespace: { type: "boolean" },
    maxNodes: positiveInteger,
    relationships: { type: "boolean" },
    rebrowse: {
      type: "object",
      additionalProperties: false,
      properties: {
        onModelChange: { type: "boolean" },
        intervalSeconds: { type: "number", minimum: 0 },
      },
    },
    subscription: {
      type: "object",
      additionalProperties: false,
      properties: {
        publishingIntervalMs: { type: "number", minimum: 0 },
        samplingIntervalMs: { type: "number", minimum: -1 },
        queueSize: positiveInteger,
        deadband: {
          type: "object",
          additionalProperties: false,
          required: ["type"],
          properties: {
            type: { enum: ["none", "absolute", "percent"] },
            value: { type: "number", minimum: 0 },
          },
        },
      },
    },
    writable: { type: "boolean" },
    historyReadThrough: { type: "boolean" },
    reconnect: {
      type: "object",
      additionalProperties: false,
      properties: {
        initialDelayMs: positiveInteger,
        maxDelayMs: positiveInteger,
      },
    },
    batchSize: { type: "integer", minimum: 1, maximum: 10_000 },
  },
};

/** Typed options with every default applied; `raw` has already passed `optionsSchema`. */
export function resolveOptions(raw: Record<string, unknown>): OpcuaOptions {
  const o = raw as Partial<OpcuaOptions> & { endpointUrl: string };
  const securityMode = o.securityMode ?? "None";
  return {
    endpointUrl: o.endpointUrl,
    securityMode,
    securityPolicy: o.securityPolicy ?? (securityMode === "None" ? "None" : "Basic256Sha256"),
    identity: o.identity ?? { type: "anonymous" },
    applicationName: o.applicationName ?? "i3xd",
    trustServerCertificate: o.trustServerCertificate ?? false,
    startNodes: o.startNodes ?? ["i=85"],
    includeStandardNamespace: o.includeStandardNamespace ?? false,
    maxNodes: o.maxNodes ?? 100_000,
    relationships: o.relationships ?? true,
    rebrowse: {
      onModelChange: o.rebrowse?.onModelChange ?? true,
      intervalSeconds: o.rebrowse?.intervalSeconds ?? 0,
    },
    subscription: {
      publishingIntervalMs: o.subscription?.publishingIntervalMs ?? 500,
      samplingIntervalMs: o.subscription?.samplingIntervalMs ?? -1,
      queueSize: o.subscription?.queueSize ?? 10,
      deadband: {
        type: o.subscription?.deadband?.type ?? "none",
        value: o.subscription?.deadband?.value ?? 0,
      },
    },
    writable: o.writable ?? false,
    historyReadThrough: o.historyReadThrough ?? false,
    reconnect: {
      initialDelayMs: o.reconnect?.initialDelayMs ?? 1000,
      maxDelayMs: o.reconnect?.maxDelayMs ?? 30_000,
    },
    batchSize: o.batchSize ?? 1000,
  };
}
