import { createHash, timingSafeEqual } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import { LRUCache } from "lru-cache";
import type { AppDeps } from "../app.js";
import type { Config } from "../config.js";
import { bulkBody, failureBody, I3xError, itemError } from "../domain/errors.js";
import { currentContext } from "../observability/context.js";
import { getLogger } from "../observability/logger.js";
import { limitJsonDepth } from "./json.js";
import {
  checkToken,
  KeyConfigError,
  type KeyEntry,
  Keyring,
  MAX_TOKEN_LENGTH,
  type Scope,
  tokenDigest,
  tokenId,
} from "./keys.js";
import { StreamShares } from "./quotas.js";

/**
 * Authentication and authorization for the HTTP API, plus the limits that need to know who is asking.
 *
 * - `Authorization: Bearer i3xd_<id>_<secret>`; the id finds the key, one scrypt check proves it, and the
 *   result is cached for a short while under a SHA-256 digest of the token, so the hot path pays a hash
 *   and a map look-up, never scrypt.
 * - Scopes: `read` for the Exploratory, Query and Subscribe methods, `write` for the Update methods.
 * - Open without a key: `GET /v1/info` (the guide requires it), `/health/*`, and the API description
 *   (`/docs`, `/v1/openapi.json`), which describes the interface and holds no data. `/metrics` has its own
 *   rule (its token, its port, or an API key).
 * - A key restricted to element-id prefixes gets a 403 item for every id outside them in bulk calls (the
 *   other items are answered normally, as the guide's bulk rules want for partial failures), and sees
 *   only matching objects in object listings. Components are part of their parent's value, so reading a
 *   permitted object includes its components. Types, namespaces and relationship types are shared
 *   vocabulary and not restricted.
 * - Subscriptions belong to the key that created them: the service sees `clientId` qualified by the key
 *   id, so a leaked subscription id is useless with another key.
 */

export interface Principal {
  id: string;
  name: string;
  scopes: ReadonlySet<Scope>;
  prefixes: readonly string[] | undefined;
  /** The stored hash the principal was verified against; a changed entry invalidates cached checks. */
  hash: string;
}

type Access = "open" | "metrics" | "read" | "write" | "authenticated";

/** Ids that a key restricted to prefixes asked for but may not touch, by position in the request list. */
interface DeniedItems {
  denied: Set<number>;
  total: number;
  ids: string[];
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
    deniedItems: DeniedItems | null;
  }
}

const log = getLogger("i3xd.security");

const REALM = 'Bearer realm="i3xd"';
/** Verified keys are remembered this long, so revocation takes effect within it even without a reload. */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;
/** Failed credential checks allowed per client address and window before 429s (each costs a scrypt). */
const FAILURES_MAX = 30;
const FAILURES_WINDOW_MS = 60_000;

const WRITE_ROUTES = new Set(["/v1/objects/value", "/v1/objects/history"]);
const OPEN_V1 = new Set(["/v1/info", "/v1/openapi.json"]);

function classify(method: string, url: string | undefined): Access {
  if (url === undefined) return "authenticated";
  if (url.startsWith("/health/")) return "open";
  if (url === "/metrics") return "metrics";
  if (url === "/docs" || url.startsWith("/docs/")) return "open";
  if (OPEN_V1.has(url) && (method === "GET" || method === "HEAD")) return "open";
  if (method === "PUT" && WRITE_ROUTES.has(url)) return "write";
  if (url.startsWith("/v1/")) return "read";
  return "authenticated";
}

/** Bulk routes whose request names elements, and where their ids are. */
const ELEMENT_BULK: Record<string, "elementIds" | "updates"> = {
  "POST /v1/objects/list": "elementIds",
  "POST /v1/objects/related": "elementIds",
  "POST /v1/objects/value": "elementIds",
  "POST /v1/objects/history": "elementIds",
  "POST /v1/subscriptions/register": "elementIds",
  "POST /v1/subscriptions/unregister": "elementIds",
  "PUT /v1/objects/value": "updates",
  "PUT /v1/objects/history": "updates",
};
const STREAM_ROUTE = "POST /v1/subscriptions/stream";
const CREATE_SUBSCRIPTION = "POST /v1/subscriptions";

/** `Authorization: Bearer <token>`: the token, `undefined` without the header, `null` when malformed. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined) return undefined;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  if (!m || m[1].length > MAX_TOKEN_LENGTH) return null;
  return m[1];
}

/** Compares two secrets in constant time (digests first, so unequal lengths leak nothing either). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

export function allowedId(prefixes: readonly string[] | undefined, id: unknown): boolean {
  if (prefixes === undefined) return true;
  if (typeof id !== "string") return false;
  for (const p of prefixes) if (id.startsWith(p)) return true;
  return false;
}

/** Loads the keys and checks that a server which must authenticate has some. */
export function openKeyring(config: Config): Keyring {
  const ring = Keyring.open({
    keysFile: config.keysFile,
    keysFileExplicit: config.keysFileExplicit,
    apiKeys: config.apiKeys,
  });
  if (config.authRequired && ring.size === 0) {
    throw new KeyConfigError(
      `authentication is required (${config.authRequiredReason}) but no API keys are configured: ` +
        `create one with \`i3xd keys create --name <name> --scope read\` (it is stored in ${config.keysFile}) ` +
        "or set I3XD_API_KEYS",
    );
  }
  return ring;
}

/** Checks credentials against the keyring, with a short-lived cache of successful checks. */
export class Authenticator {
  private readonly verified = new LRUCache<string, Principal>({ max: VERIFIED_MAX, ttl: VERIFIED_TTL_MS });
  private readonly failures = new LRUCache<string, { count: number; resetAt: number }>({
    max: 10_000,
    ttl: FAILURES_WINDOW_MS,
  });

  constructor(private readonly keyring: Keyring) {
    keyring.onChange(() => this.verified.clear());
  }

  /** A cached successful check of this token, if any (no scrypt). */
  peek(token: string): Principal | undefined {
    const p = this.verified.get(tokenDigest(token));
    // The entry may have been revoked or replaced since; the keyring is the truth.
    if (p !== undefined && this.keyring.get(p.id)?.hash === p.hash) return p;
    return undefined;
  }

  async verify(token: string): Promise<Principal | undefined> {
    const cached = this.peek(token);
    if (cached) return cached;
    const id = tokenId(token);
    const entry = id === undefined ? undefined : this.keyring.get(id);
    if (!(await checkToken(token, entry)) || entry === undefined) return undefined;
    const principal = toPrincipal(entry);
    this.verified.set(tokenDigest(token), principal);
    return principal;
  }

  /** Seconds until the address may try again, when it has failed too often. */
  blockedFor(address: string, now = Date.now()): number {
    const f = this.failures.get(address);
    if (f === undefined || f.count < FAILURES_MAX || now >= f.resetAt) return 0;
    return Math.max(1, Math.ceil((f.resetAt - now) / 1000));
  }

  /** Takes back an attempt counted before its check, once the check succeeded. */
  forgive(address: string): void {
    const f = this.failures.get(address);
    if (f !== undefined && f.count > 0) f.count--;
  }

  recordFailure(address: string, now = Date.now()): void {
    const f = this.failures.get(address);
    if (f === undefined || now >= f.resetAt)
      this.failures.set(address, { count: 1, resetAt: now + FAILURES_WINDOW_MS });
    else f.count++;
  }
}

function toPrincipal(entry: KeyEntry): Principal {
  return {
    id: entry.id,
    name: entry.name,
    scopes: new Set(entry.scopes),
    prefixes: entry.prefixes,
    hash: entry.hash,
  };
}

export interface Security {
  /** Keys are checked (required by configuration, or keys existed at start-up). */
  enforced: boolean;
  keyring: Keyring;
  authenticator: Authenticator;
  /** For the observability plugin: the key name when the request's token is already verified. */
  userIdOf(request: FastifyRequest): string | undefined;
  plugin: FastifyPluginAsync<AppDeps>;
}

/**
 * Everything security needs for one app. `keyring` is passed when the runtime loaded it already (it does
 * so before opening the store, so a misconfigured server stops before touching any data).
 */
export function createSecurity(config: Config, keyring: Keyring = openKeyring(config)): Security {
  const enforced = config.authRequired || keyring.size > 0;
  const authenticator = new Authenticator(keyring);
  const tls = config.tlsCert !== undefined;

  const userIdOf = (request: FastifyRequest): string | undefined => {
    if (!enforced) return undefined;
    const header = request.headers.authorization;
    if (header === undefined) return undefined;
    const token = bearerToken(header);
    if (!token) return undefined;
    const p = authenticator.peek(token);
    if (p === undefined) return undefined;
    request.principal = p;
    return p.name;
  };

  const plugin: FastifyPluginAsync<AppDeps> = async (app) => {
    app.decorateRequest("principal", null);
    app.decorateRequest("deniedItems", null);
    limitJsonDepth(app, config.maxJsonDepth);
    if (enforced) keyring.watch();
    app.addHook("onClose", async () => keyring.close());
    announce(config, enforced, keyring);

    const accessCache = new Map<string, Access>();
    const accessOf = (request: FastifyRequest): Access => {
      const url = request.is404 ? undefined : request.routeOptions.url;
      const key = `${request.method} ${url}`;
      let access = accessCache.get(key);
      if (access === undefined) {
        access = classify(request.method, url);
        accessCache.set(key, access);
      }
      return access;
    };

    const apiHeaders: Record<string, string> = {
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
      "x-frame-options": "DENY",
      "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
      "referrer-policy": "no-referrer",
      ...(tls ? { "strict-transport-security": "max-age=31536000" } : {}),
    };
    // Swagger UI sets its own Content-Security-Policy (with the hashes of its inline scripts).
    const docsHeaders: Record<string, string> = {
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      ...(tls ? { "strict-transport-security": "max-age=31536000" } : {}),
    };

    const unauthorized = (reply: FastifyReply, detail: string, invalid: boolean) =>
      reply
        .code(401)
        .header("www-authenticate", invalid ? `${REALM}, error="invalid_token"` : REALM)
        .send(failureBody(401, detail));

    const authorize = (
      p: Principal,
      access: Access,
      reply: FastifyReply,
      done: HookHandlerDoneFunction,
    ): void => {
      if ((access === "read" || access === "write") && !p.scopes.has(access)) {
        reply
          .code(403)
          .header("www-authenticate", `${REALM}, error="insufficient_scope", scope="${access}"`)
          .send(failureBody(403, `The API key "${p.name}" does not have the "${access}" scope`));
        return;
      }
      done();
    };

    /** Checks the request's API key; `access` says what the route needs. */
    const authenticate = (
      request: FastifyRequest,
      reply: FastifyReply,
      done: HookHandlerDoneFunction,
      access: Access,
    ): void => {
      if (request.principal !== null) {
        authorize(request.principal, access, reply, done);
        return;
      }
      const token = bearerToken(request.headers.authorization);
      if (token === undefined) {
        unauthorized(reply, "Authentication required: send an API key as Authorization: Bearer <key>", false);
        return;
      }
      if (token === null) {
        unauthorized(reply, "Malformed Authorization header: expected Bearer <key>", true);
        return;
      }
      const cached = authenticator.peek(token);
      if (cached !== undefined) {
        accept(request, cached, access, reply, done);
        return;
      }
      // Every uncached check costs a scrypt; an address that keeps failing has to wait.
      const address = request.ip;
      const wait = authenticator.blockedFor(address);
      if (wait > 0) {
        reply
          .code(429)
          .header("retry-after", String(wait))
          .send(failureBody(429, `Too many failed authentication attempts; retry in ${wait} s`));
        return;
      }
      // Counted before the check: a burst of concurrent attempts must not all reach scrypt first.
      authenticator.recordFailure(address);
      authenticator.verify(token).then(
        (p) => {
          if (p === undefined) {
            log.info({ ip: address }, "Invalid API key");
            unauthorized(reply, "Invalid API key", true);
            return;
          }
          authenticator.forgive(address);
          accept(request, p, access, reply, done);
        },
        (err: unknown) => done(err as Error),
      );
    };

    const accept = (
      request: FastifyRequest,
      p: Principal,
      access: Access,
      reply: FastifyReply,
      done: HookHandlerDoneFunction,
    ): void => {
      request.principal = p;
      const ctx = currentContext();
      if (ctx !== undefined) ctx.userId = p.name;
      authorize(p, access, reply, done);
    };

    app.addHook("onRequest", (request, reply, done) => {
      const access = accessOf(request);
      const url = request.routeOptions.url;
      reply.headers(
        url !== undefined && (url === "/docs" || url.startsWith("/docs/")) ? docsHeaders : apiHeaders,
      );
      if (request.headers.host === undefined && request.raw.httpVersion === "1.1") {
        reply.code(400).send(failureBody(400, "HTTP/1.1 requests need a Host header"));
        return;
      }
      if (access === "open") return done();
      if (access === "metrics") {
        if (config.metricsToken !== undefined) {
          const token = bearerToken(request.headers.authorization);
          if (typeof token === "string" && safeEqual(token, config.metricsToken)) return done();
          unauthorized(reply, "GET /metrics needs the metrics token (I3XD_METRICS_TOKEN) as Bearer", true);
          return;
        }
        if (!enforced) return done();
        return authenticate(request, reply, done, "authenticated");
      }
      if (!enforced) return done();
      authenticate(request, reply, done, access);
    });

    const streamShares = new StreamShares(config);
    app.addHook("preHandler", (request, reply, done) => {
      const url = request.routeOptions.url;
      if (url === undefined || !url.startsWith("/v1/")) return done();
      const route = `${request.method} ${url}`;
      const p = request.principal;
      if (route === STREAM_ROUTE && !streamShares.admit(request, reply)) return;
      if (p === null) return done();
      if (url.startsWith("/v1/subscriptions")) scopeClientId(request.body, p);
      if (p.prefixes !== undefined) {
        const where = ELEMENT_BULK[route];
        if (where !== undefined && !restrictItems(request, reply, p.prefixes, where)) return;
      }
      done();
    });

    // Without enforced keys no request has a principal, and this hook would only cost every response a step.
    if (enforced)
      app.addHook("preSerialization", (request, _reply, payload: unknown, done) => {
        const p = request.principal;
        if (p === null || payload === null || typeof payload !== "object") return done(null, payload);
        const url = request.routeOptions.url;
        const route = `${request.method} ${url}`;
        let out = payload as Record<string, unknown>;
        if (request.deniedItems !== null) out = mergeDenied(out, request.deniedItems);
        if (route === CREATE_SUBSCRIPTION) out = unscopeCreated(out, p);
        if (p.prefixes !== undefined) out = filterListing(route, out, p.prefixes);
        done(null, out);
      });

    if (config.rateLimitMax > 0) {
      const windowText = describeWindow(config.rateLimitWindowMs);
      await app.register(rateLimit, {
        global: true,
        max: config.rateLimitMax,
        timeWindow: config.rateLimitWindowMs,
        keyGenerator: (request) => (request.principal ? `key:${request.principal.id}` : `ip:${request.ip}`),
        // Probes and scrapes come from infrastructure at a fixed pace; throttling them helps nobody.
        allowList: (request) => {
          const url = request.routeOptions.url;
          return url === "/metrics" || (url?.startsWith("/health/") ?? false);
        },
        errorResponseBuilder: (_request, ctx) =>
          new I3xError(
            429,
            `Rate limit exceeded: at most ${ctx.max} requests per ${windowText} per ${enforced ? "API key" : "client address"}; retry in ${ctx.after}`,
          ),
      });
    }
  };
  // Hooks and decorators apply to the whole server, not only inside this plugin.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;

  return { enforced, keyring, authenticator, userIdOf, plugin };
}

function announce(config: Config, enforced: boolean, keyring: Keyring): void {
  if (enforced) {
    log.info(
      {
        keys: keyring.size,
        keys_file: keyring.file,
        reason: config.authRequiredReason ?? "API keys are configured",
      },
      "API keys required on every endpoint except /v1/info, /health/* and /docs",
    );
    if (config.tlsCert === undefined && config.authRequiredReason !== undefined) {
      log.warn(
        "HTTPS is off: API keys cross the network in clear text unless TLS is terminated in front of i3xd " +
          "(set I3XD_TLS_CERT and I3XD_TLS_KEY)",
      );
    }
  } else {
    log.warn(
      { address: config.host },
      "Authentication is off: no API keys are configured and the server listens on loopback in development, " +
        "so any local process can read and write. Create a key with `i3xd keys create` to turn it on",
    );
  }
}

function describeWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? "hour" : `${ms / 3_600_000} hours`;
  if (ms % 60_000 === 0) return ms === 60_000 ? "minute" : `${ms / 60_000} minutes`;
  if (ms % 1000 === 0) return ms === 1000 ? "second" : `${ms / 1000} seconds`;
  return `${ms} ms`;
}

/** The subscription service sees `<key id>~<clientId>`: clients of different keys never meet. */
function scopeClientId(body: unknown, p: Principal): void {
  if (body === null || typeof body !== "object") return;
  const b = body as { clientId?: unknown };
  // A blank clientId stays as it is, so the service still answers it with its 400.
  if (typeof b.clientId === "string" && b.clientId.trim() !== "") b.clientId = `${p.id}~${b.clientId}`;
}

function unscopeCreated(payload: Record<string, unknown>, p: Principal): Record<string, unknown> {
  const result = payload.result as { clientId?: unknown } | undefined;
  const scope = `${p.id}~`;
  if (result && typeof result.clientId === "string" && result.clientId.startsWith(scope)) {
    return { ...payload, result: { ...result, clientId: result.clientId.slice(scope.length) } };
  }
  return payload;
}

/**
 * Takes the ids a prefix-restricted key may not touch out of the request, to be answered as 403 items in
 * their places. Returns false when it answered the request itself (every id was denied).
 */
function restrictItems(
  request: FastifyRequest,
  reply: FastifyReply,
  prefixes: readonly string[],
  where: "elementIds" | "updates",
): boolean {
  const body = request.body as Record<string, unknown> | null;
  const list = body?.[where];
  if (!Array.isArray(list)) return true;
  const ids = list.map((item) => (where === "updates" ? (item as { elementId?: unknown })?.elementId : item));
  const denied = new Set<number>();
  ids.forEach((id, i) => {
    if (!allowedId(prefixes, id)) denied.add(i);
  });
  if (denied.size === 0) return true;
  const names = ids.map((id) => (typeof id === "string" ? id : String(id)));
  if (denied.size === list.length) {
    reply.send(
      bulkBody(
        "elementId",
        names.map((id) => itemError(id, 403, forbiddenElement(id))),
      ),
    );
    return false;
  }
  (body as Record<string, unknown>)[where] = list.filter((_, i) => !denied.has(i));
  request.deniedItems = { denied, total: list.length, ids: names };
  return true;
}

const forbiddenElement = (id: string) => `This API key may not access element ${id}`;

function mergeDenied(payload: Record<string, unknown>, d: DeniedItems): Record<string, unknown> {
  const results = payload.results;
  if (!Array.isArray(results) || results.length !== d.total - d.denied.size) return payload;
  const merged: unknown[] = [];
  let next = 0;
  for (let i = 0; i < d.total; i++) {
    if (d.denied.has(i)) {
      const e = itemError(d.ids[i], 403, forbiddenElement(d.ids[i]));
      merged.push({
        success: false,
        elementId: e.id,
        responseDetail: e.success ? undefined : e.responseDetail,
      });
    } else merged.push(results[next++]);
  }
  return { ...payload, success: false, results: merged };
}

/**
 * True when the response hook below leaves a response as its handler made it: a request without a key,
 * or with one not restricted to id prefixes (only those get listings narrowed and denied items merged in).
 */
export function answeredAsMade(request: FastifyRequest): boolean {
  const principal = request.principal;
  return principal === null || principal.prefixes === undefined;
}

/** Object listings show a prefix-restricted key only the objects it may access. */
function filterListing(route: string, payload: Record<string, unknown>, prefixes: readonly string[]) {
  if (route === "GET /v1/objects" && Array.isArray(payload.result)) {
    return {
      ...payload,
      result: payload.result.filter((o) => allowedId(prefixes, (o as { elementId?: unknown })?.elementId)),
    };
  }
  if (route === "POST /v1/objects/related" && Array.isArray(payload.results)) {
    return {
      ...payload,
      results: payload.results.map((item) => {
        const r = (item as { result?: unknown }).result;
        if (!Array.isArray(r)) return item;
        return {
          ...(item as object),
          result: r.filter((e) =>
            allowedId(prefixes, (e as { object?: { elementId?: unknown } })?.object?.elementId),
          ),
        };
      }),
    };
  }
  return payload;
}
