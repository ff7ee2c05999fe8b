import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import { LRUCache } from "lru-cache";
import type { AppDeps } from "../api/deps.js";
import type { Config } from "../config.js";
import { Access, type Scope } from "../domain/access.js";
import { failureBody } from "../domain/errors.js";
import { currentContext } from "../observability/context.js";
import { getLogger } from "../observability/logger.js";
import { addResponseHeaders } from "./headers.js";
import { limitJsonDepth } from "./json.js";
import {
  checkToken,
  KeyConfigError,
  type KeyEntry,
  Keyring,
  MAX_TOKEN_LENGTH,
  tokenDigest,
  tokenId,
} from "./keys.js";
import { limitRate, limitStreams, requireHostHeader } from "./limits.js";

/**
 * Who is asking and what they may do, decided once per request in the `onRequest` hook.
 *
 * - `Authorization: Bearer i3xd_<id>_<secret>`; the id finds the key, one scrypt check proves it, and the
 *   result is cached for a short while under a SHA-256 digest of the token, so the hot path pays a hash
 *   and a map look-up, never scrypt.
 * - Each route declares the scope it needs in its Fastify `config` (`RouteScope`), where it is defined;
 *   an unknown path needs a key (401 before 404, so route discovery needs one too).
 * - The request's `Access` (the key's scopes and element-id prefixes, or everything when running open) is
 *   resolved here, once, and routes hand it to the services, which decide with it what they read: nothing
 *   downstream rewrites a response (docs/adr/007-authentication-and-limits.md).
 */

/**
 * What a route needs: `open` nothing, `metrics` the metrics token or any key, `read`/`write` a key with
 * that scope. Without a declaration a route needs a valid key of any scope.
 */
export type RouteScope = "open" | "metrics" | Scope;

declare module "fastify" {
  interface FastifyContextConfig {
    scope?: RouteScope;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** Set by the authentication hook before any handler runs. */
    access: Access;
  }
}

export interface Principal {
  id: string;
  name: string;
  access: Access;
  /** The stored hash the principal was verified against; a changed entry invalidates cached checks. */
  hash: string;
}

const log = getLogger("i3xd.security");

const REALM = 'Bearer realm="i3xd"';
/** Verified keys are remembered this long, so revocation takes effect within it even without a reload. */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;
/** Failed credential checks allowed per client address and window before 429s (each costs a scrypt). */
const FAILURES_MAX = 30;
const FAILURES_WINDOW_MS = 60_000;

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

/** The key's access is made here, once per verification, so every request with the key shares it. */
function toPrincipal(entry: KeyEntry): Principal {
  return { id: entry.id, name: entry.name, access: Access.forKey(entry), hash: entry.hash };
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
    // Fastify decorates with null; the hook below sets every request's access before its handler.
    app.decorateRequest("access", null as unknown as Access);
    limitJsonDepth(app, config.maxJsonDepth);
    if (enforced) keyring.watch();
    app.addHook("onClose", async () => keyring.close());
    announce(config, enforced, keyring);

    addResponseHeaders(app, config);
    requireHostHeader(app);
    app.addHook("onRequest", authenticationHook(config, enforced, authenticator));
    limitStreams(app, config);
    await limitRate(app, config, enforced);
  };
  // Hooks and decorators apply to the whole server, not only inside this plugin.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;

  return { enforced, keyring, authenticator, userIdOf, plugin };
}

/** The `onRequest` hook that checks the key against the route's declared scope and sets `request.access`. */
function authenticationHook(config: Config, enforced: boolean, authenticator: Authenticator) {
  const unauthorized = (reply: FastifyReply, detail: string, invalid: boolean) =>
    reply
      .code(401)
      .header("www-authenticate", invalid ? `${REALM}, error="invalid_token"` : REALM)
      .send(failureBody(401, detail));

  /** Accepts the verified key for this request when it has the scope the route needs. */
  const authorize = (
    request: FastifyRequest,
    p: Principal,
    scope: RouteScope | undefined,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void => {
    if (request.principal !== p) {
      request.principal = p;
      const ctx = currentContext();
      if (ctx !== undefined) ctx.userId = p.name;
    }
    if ((scope === "read" || scope === "write") && !p.access.hasScope(scope)) {
      reply
        .code(403)
        .header("www-authenticate", `${REALM}, error="insufficient_scope", scope="${scope}"`)
        .send(failureBody(403, `The API key "${p.name}" does not have the "${scope}" scope`));
      return;
    }
    request.access = p.access;
    done();
  };

  /** Checks the request's API key; `scope` says what the route needs. */
  const authenticate = (
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
    scope: RouteScope | undefined,
  ): void => {
    if (request.principal !== null) {
      authorize(request, request.principal, scope, reply, done);
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
      authorize(request, cached, scope, reply, done);
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
        authorize(request, p, scope, reply, done);
      },
      (err: unknown) => done(err as Error),
    );
  };

  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    // An unknown path has no declared scope: it needs a key, so a 404 tells nothing to a stranger.
    const scope = request.is404 ? undefined : request.routeOptions.config.scope;
    if (scope === "open") {
      request.access = Access.everything;
      done();
      return;
    }
    if (scope === "metrics") {
      request.access = Access.everything;
      if (config.metricsToken !== undefined) {
        const token = bearerToken(request.headers.authorization);
        if (typeof token === "string" && safeEqual(token, config.metricsToken)) {
          done();
          return;
        }
        unauthorized(reply, "GET /metrics needs the metrics token (I3XD_METRICS_TOKEN) as Bearer", true);
        return;
      }
    }
    if (!enforced) {
      request.access = Access.everything;
      done();
      return;
    }
    authenticate(request, reply, done, scope === "metrics" ? undefined : scope);
  };
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
