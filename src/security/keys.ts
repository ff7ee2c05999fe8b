import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual } from "node:crypto";
import {
  existsSync,
  readFileSync,
  renameSync,
  type Stats,
  unwatchFile,
  watchFile,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { SCOPES, type Scope } from "../domain/access.js";
import { getLogger } from "../observability/logger.js";

/**
 * API keys. A key is `i3xd_<id>_<secret>`: the id (public, like a user name) finds the entry in O(1), the
 * secret carries 256 random bits. Only a salted scrypt hash of the whole key is ever stored, in the keys
 * file (`I3XD_KEYS_FILE`) and/or in `I3XD_API_KEYS`; a key is shown once, when it is created.
 */

export { SCOPES, type Scope };

/** One stored key: never the key itself, only its hash. */
export interface KeyEntry {
  id: string;
  /** Who holds the key; becomes `user_id` in logs. */
  name: string;
  scopes: Scope[];
  /** When present, the key may touch only objects whose elementId starts with one of these. */
  prefixes?: string[];
  /** `scrypt$<N>$<r>$<p>$<salt>$<hash>` (salt and hash base64url). */
  hash: string;
  created?: string;
}

export interface KeysFile {
  version: 1;
  keys: KeyEntry[];
}

export class KeyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyConfigError";
  }
}

const log = getLogger("i3xd.security");

const TOKEN_PREFIX = "i3xd_";
const ID_PATTERN = /^[0-9a-f]{12}$/;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** A key is 5 + 12 + 1 + 43 characters; anything much longer is not one of ours and is not hashed. */
export const MAX_TOKEN_LENGTH = 256;

/**
 * scrypt cost. API keys carry 256 random bits, so the hash does not need to resist guessing the way a
 * password hash does; the cost only has to make a stolen keys file useless, and verification results are
 * cached (see auth.ts) so a request pays it at most once per key and cache period.
 */
const SCRYPT = { N: 16_384, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;

function scrypt(secret: string, salt: Buffer, n: number, r: number, p: number, len: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(secret, salt, len, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, out) =>
      err ? reject(err) : resolve(out),
    );
  });
}

/** A new key: the token to hand out once, and the entry (hash only) to store. */
export async function createKey(
  name: string,
  scopes: readonly Scope[],
  prefixes: readonly string[] = [],
  taken: ReadonlySet<string> = new Set(),
): Promise<{ token: string; entry: KeyEntry }> {
  if (!NAME_PATTERN.test(name)) {
    throw new KeyConfigError(
      `key name "${name}" must be 1-64 characters of letters, digits, '.', '_', '@' or '-' (it appears in logs)`,
    );
  }
  const scopeList = normalizeScopes(scopes, "--scope");
  let id: string;
  do id = randomBytes(6).toString("hex");
  while (taken.has(id));
  const token = `${TOKEN_PREFIX}${id}_${randomBytes(32).toString("base64url")}`;
  const entry: KeyEntry = {
    id,
    name,
    scopes: scopeList,
    ...(prefixes.length > 0 ? { prefixes: [...prefixes] } : {}),
    hash: await hashToken(token),
    created: new Date().toISOString(),
  };
  return { token, entry };
}

export async function hashToken(token: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltLength);
  const hash = await scrypt(token, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLength);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

interface ParsedHash {
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function parseHash(text: string): ParsedHash | undefined {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(text);
  if (!m) return undefined;
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Powers of two only, and bounded, so a tampered entry cannot make verification allocate gigabytes.
  if (n < 2 || n > 1 << 20 || (n & (n - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const salt = Buffer.from(m[4], "base64url");
  const hash = Buffer.from(m[5], "base64url");
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
  return { n, r, p, salt, hash };
}

/** The id part of a token, or undefined when the text is not shaped like one of our keys. */
export function tokenId(token: string): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH || !token.startsWith(TOKEN_PREFIX)) return undefined;
  const cut = token.indexOf("_", TOKEN_PREFIX.length);
  if (cut < 0) return undefined;
  const id = token.slice(TOKEN_PREFIX.length, cut);
  return ID_PATTERN.test(id) && cut + 1 < token.length ? id : undefined;
}

/**
 * Concurrent scrypt checks at most: they run on libuv's thread pool, which gzip, file system calls and DNS
 * share. A flood of bad keys then waits here instead of queueing ahead of everyone else's work there.
 */
const SCRYPT_SLOTS = Math.max(1, Number(process.env.UV_THREADPOOL_SIZE ?? 4) - 2);
let scryptRunning = 0;
const scryptWaiting: (() => void)[] = [];

async function inScryptSlot<T>(work: () => Promise<T>): Promise<T> {
  if (scryptRunning >= SCRYPT_SLOTS) await new Promise<void>((resolve) => scryptWaiting.push(resolve));
  else scryptRunning++;
  try {
    return await work();
  } finally {
    const next = scryptWaiting.shift();
    if (next) next();
    else scryptRunning--;
  }
}

/** Stands in for a key that does not exist, so a wrong id costs what a wrong secret costs. */
let unknownKey: Promise<KeyEntry> | undefined;

function unknownKeyEntry(): Promise<KeyEntry> {
  unknownKey ??= hashToken(randomBytes(32).toString("base64url")).then((hash) => ({
    id: "000000000000",
    name: "unknown",
    scopes: ["read"],
    hash,
  }));
  return unknownKey;
}

/**
 * Checks a presented token against its entry, or against a stand-in when its id is unknown (or it is not
 * shaped like a key): every failure takes one scrypt, so the response time does not tell whether an id
 * exists. The check waits for a free scrypt slot.
 */
export async function checkToken(token: string, entry: KeyEntry | undefined): Promise<boolean> {
  if (entry !== undefined) return inScryptSlot(() => verifyToken(token, entry));
  const standIn = await unknownKeyEntry();
  await inScryptSlot(() => verifyToken(token.slice(0, MAX_TOKEN_LENGTH), standIn));
  return false;
}

/** Recomputes the hash of `token` with the entry's salt and compares in constant time. */
export async function verifyToken(token: string, entry: KeyEntry): Promise<boolean> {
  const h = parseHash(entry.hash);
  if (!h) return false;
  const derived = await scrypt(token, h.salt, h.n, h.r, h.p, h.hash.length);
  return timingSafeEqual(derived, h.hash);
}

/** A fast digest of a token, used only as a cache key (never stored). */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

function normalizeScopes(scopes: readonly string[], where: string): Scope[] {
  const out: Scope[] = [];
  for (const s of scopes) {
    const v = s.trim().toLowerCase();
    if (!SCOPES.includes(v as Scope))
      throw new KeyConfigError(`${where}: unknown scope "${s}" (read, write)`);
    if (!out.includes(v as Scope)) out.push(v as Scope);
  }
  if (out.length === 0) throw new KeyConfigError(`${where}: at least one scope is needed (read, write)`);
  return out;
}

/** Checks one stored entry; `where` names it in the error (file and position, or the variable). */
function validateEntry(raw: unknown, where: string): KeyEntry {
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new KeyConfigError(`${where}: not an object`);
  const e = raw as Record<string, unknown>;
  if (typeof e.id !== "string" || !ID_PATTERN.test(e.id))
    throw new KeyConfigError(`${where}: "id" must be 12 lower-case hex digits`);
  if (typeof e.name !== "string" || !NAME_PATTERN.test(e.name))
    throw new KeyConfigError(
      `${where}: "name" must be 1-64 characters of letters, digits, '.', '_', '@', '-'`,
    );
  if (!Array.isArray(e.scopes) || !e.scopes.every((s) => typeof s === "string"))
    throw new KeyConfigError(`${where}: "scopes" must be a list such as ["read"] or ["read","write"]`);
  const scopes = normalizeScopes(e.scopes as string[], where);
  let prefixes: string[] | undefined;
  if (e.prefixes !== undefined) {
    if (
      !Array.isArray(e.prefixes) ||
      e.prefixes.length === 0 ||
      !e.prefixes.every((p) => typeof p === "string" && p !== "")
    )
      throw new KeyConfigError(`${where}: "prefixes" must be a non-empty list of non-empty strings`);
    prefixes = e.prefixes as string[];
  }
  if (typeof e.hash !== "string" || !parseHash(e.hash))
    throw new KeyConfigError(`${where}: "hash" must be an scrypt hash written by \`i3xd keys create\``);
  return {
    id: e.id,
    name: e.name,
    scopes,
    ...(prefixes ? { prefixes } : {}),
    hash: e.hash,
    ...(typeof e.created === "string" ? { created: e.created } : {}),
  };
}

function validateList(list: unknown, where: string): KeyEntry[] {
  if (!Array.isArray(list)) throw new KeyConfigError(`${where}: expected a list of key entries`);
  const out = list.map((e, i) => validateEntry(e, `${where}, key #${i + 1}`));
  const ids = new Set<string>();
  for (const e of out) {
    if (ids.has(e.id)) throw new KeyConfigError(`${where}: key id ${e.id} appears twice`);
    ids.add(e.id);
  }
  return out;
}

/** Entries from `I3XD_API_KEYS`: a JSON list of entries as `i3xd keys create --env` prints them. */
export function parseEnvKeys(text: string | undefined): KeyEntry[] {
  if (text === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyConfigError(
      "I3XD_API_KEYS must be a JSON list of hashed key entries (see `i3xd keys create --env`)",
    );
  }
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) parsed = [parsed];
  return validateList(parsed, "I3XD_API_KEYS");
}

/** Reads the keys file; a missing file is an empty key list. */
export function readKeysFile(file: string): KeysFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, keys: [] };
    throw new KeyConfigError(`cannot read keys file ${file}: ${(err as Error).message}`);
  }
  if (text.trim() === "") return { version: 1, keys: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new KeyConfigError(`keys file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys;
  return { version: 1, keys: validateList(keys, `keys file ${file}`) };
}

/** Replaces the keys file atomically, readable by its owner only (it holds hashes, still worth guarding). */
export function writeKeysFile(file: string, content: KeysFile): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export interface KeyringOptions {
  keysFile: string;
  /** The keys file path was set explicitly (I3XD_KEYS_FILE): then it must exist. */
  keysFileExplicit: boolean;
  apiKeys: string | undefined;
  /** How often the keys file is checked for changes (revocations apply without a restart), ms. */
  watchIntervalMs?: number;
}

/**
 * The key entries the server accepts: those of `I3XD_API_KEYS` plus those of the keys file, which is
 * re-read when it changes. A file that turns invalid keeps the previous entries (and says so in the log).
 */
export class Keyring {
  private byId = new Map<string, KeyEntry>();
  private readonly envEntries: KeyEntry[];
  private readonly listeners: (() => void)[] = [];
  private watcher: ((curr: Stats, prev: Stats) => void) | undefined;

  private constructor(private readonly options: KeyringOptions) {
    this.envEntries = parseEnvKeys(options.apiKeys);
  }

  static open(options: KeyringOptions): Keyring {
    if (options.keysFileExplicit && !existsSync(options.keysFile)) {
      throw new KeyConfigError(
        `keys file ${options.keysFile} (I3XD_KEYS_FILE) does not exist; create a key with \`i3xd keys create\``,
      );
    }
    const ring = new Keyring(options);
    ring.install(readKeysFile(options.keysFile).keys);
    return ring;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): KeyEntry | undefined {
    return this.byId.get(id);
  }

  get file(): string {
    return this.options.keysFile;
  }

  /** Called after the entries changed (a key added or revoked in the file). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Starts re-reading the keys file when it changes; polling, so it works on every file system. */
  watch(): void {
    if (this.watcher) return;
    this.watcher = (curr, prev) => {
      if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
      this.reload();
    };
    watchFile(
      this.options.keysFile,
      { persistent: false, interval: this.options.watchIntervalMs ?? 1000 },
      this.watcher,
    );
  }

  reload(): void {
    try {
      const before = this.byId.size;
      this.install(readKeysFile(this.options.keysFile).keys);
      log.info({ file: this.options.keysFile, keys: this.byId.size, before }, "API keys reloaded");
    } catch (err) {
      log.error({ err }, "Keys file changed but cannot be used; keeping the previous keys");
    }
  }

  close(): void {
    // Only this keyring's listener: another server in the process may watch the same file.
    if (this.watcher) unwatchFile(this.options.keysFile, this.watcher);
    this.watcher = undefined;
  }

  private install(fileEntries: KeyEntry[]): void {
    const next = new Map<string, KeyEntry>();
    for (const e of [...this.envEntries, ...fileEntries]) next.set(e.id, e);
    this.byId = next;
    for (const l of this.listeners) l();
  }
}
