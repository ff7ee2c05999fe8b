import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { findSourceMap } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import { currentContext } from "./context.js";
import { redactKeys, redactObject, redactText } from "./redact.js";

/** pino's numeric levels mapped to the names of the observability contract (§1). */
const LEVEL_NAMES: Record<number, string> = {
  10: "DEBUG",
  20: "DEBUG",
  30: "INFO",
  40: "WARNING",
  50: "ERROR",
  60: "CRITICAL",
};

export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** The part of the configuration that shapes logging (a subset of `Config`). */
export interface LoggingConfig {
  logLevel: LogLevelName;
  logFormat: "json" | "pretty";
  /** JSON lines go to this file (rotated by size) instead of stdout. */
  logFile?: string;
  /** Bytes per log file before it is rotated. */
  logFileMaxSize: number;
  /** Most log files that exist at any moment, the one being written included (at least 2). */
  logFileCount: number;
  /** Adds `module`, `function` and `line` to every line (a capture of a few stack frames per line). */
  logCaller: boolean;
}

/**
 * An extra destination next to the primary one (stdout or the file), e.g. a log shipper. Its stream is
 * owned by the logging setup from then on: it is flushed on `flushLogs` and ended when replaced.
 */
export interface LogSink {
  name: string;
  stream: DestinationStream;
  /** Lowest level this sink receives; defaults to the configured level. */
  level?: Exclude<LogLevelName, "silent">;
}

let captureCaller = false;

/** Returned by the mixin when there is nothing to add, so the merge step can skip the copy. */
const NO_FIELDS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

function mixin(): Record<string, unknown> {
  const ctx = currentContext();
  if (ctx === undefined && !captureCaller) return NO_FIELDS;
  const out: Record<string, unknown> = {};
  // The request context rides in AsyncLocalStorage, so no caller ever passes request ids by hand.
  if (ctx !== undefined) {
    out.request_id = ctx.requestId;
    if (ctx.userId !== undefined) out.user_id = ctx.userId;
    if (ctx.traceId !== undefined) out.trace_id = ctx.traceId;
    if (ctx.spanId !== undefined) out.span_id = ctx.spanId;
  }
  if (captureCaller) addCaller(out);
  return out;
}

function mergeMixin(mergeObject: object, mixinObject: object): object {
  return mixinObject === NO_FIELDS ? mergeObject : Object.assign(mixinObject, mergeObject);
}

/** Errors logged under `err` or `error` land in the contract's `exception` field, then secrets are masked. */
function formatLogObject(obj: Record<string, unknown>): Record<string, unknown> {
  let o = obj;
  if (o.exception === undefined) {
    const err = o.err instanceof Error ? o.err : o.error instanceof Error ? o.error : undefined;
    if (err !== undefined) {
      const { err: _err, error: _error, ...rest } = o;
      o = { ...rest, exception: err };
    }
  }
  return redactObject(o);
}

/** One string with the error's type, message and stack, followed by its causes. */
export function formatException(err: unknown): string {
  if (!(err instanceof Error)) return redactText(typeof err === "string" ? err : safeString(err));
  let text = describeError(err);
  let cause: unknown = err.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < 3; depth++) {
    text += `\nCaused by: ${cause instanceof Error ? describeError(cause) : safeString(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return redactText(text);
}

function describeError(err: Error): string {
  const type = err.name && err.name !== "Error" ? err.name : (err.constructor?.name ?? "Error");
  const code = (err as { code?: unknown }).code;
  let head = `${type}: ${err.message}`;
  if (typeof code === "string" && code !== "") head += ` [${code}]`;
  const stack = err.stack;
  if (!stack) return head;
  // V8 stacks begin with "Name: message"; keep only the frames so the head is not repeated.
  const frames = stack.indexOf("\n    at ");
  return frames >= 0 ? head + stack.slice(frames) : head;
}

function safeString(value: unknown): string {
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

const SELF = import.meta.url;
const SELF_PATH = fileURLToPath(SELF);
const CWD = process.cwd();
/**
 * Frames captured per line, counted from the mixin's caller: pino's two (its write and level method), the
 * request log's `writeFlatLine` when it hands a line to pino, then the logging call.
 */
const CALLER_FRAMES = 4;
/** Resolved call sites kept; call sites are a property of the code, so this is reached only by odd code. */
const CALLER_CACHE_MAX = 10_000;
const PINO_FILE = /[\\/]node_modules[\\/]pino[\\/]/;

interface Caller {
  module: string;
  function: string;
  line: number;
  /** The three fields as they appear in a line, for lines built directly (`writeFlatLine`). */
  json: string;
}

/** Call site (`file:line:column` of the running code) → where the logging call is, in the source. */
const callers = new Map<string, Caller>();

/** V8's stack trace API hands the call sites over as objects when `prepareStackTrace` returns them. */
const structuredStack = (_error: Error, sites: NodeJS.CallSite[]): NodeJS.CallSite[] => sites;

/**
 * The call sites below `above` (excluded), at most `limit`, as objects: no stack text is formatted (nor
 * source-mapped) only to be parsed again. Node's own `prepareStackTrace` is back before this returns.
 */
function callSitesBelow(above: (...args: never[]) => unknown, limit: number): NodeJS.CallSite[] {
  const holder: { stack?: NodeJS.CallSite[] } = {};
  const prepare = Error.prepareStackTrace;
  const stackLimit = Error.stackTraceLimit;
  Error.prepareStackTrace = structuredStack;
  Error.stackTraceLimit = limit;
  try {
    Error.captureStackTrace(holder, above);
    // The stack is prepared when it is first read: here, while the structured preparer is in place.
    return holder.stack ?? [];
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = stackLimit;
  }
}

/**
 * `module` (file relative to the working directory), `function` and `line` of the logging call. Only the
 * few frames between the mixin and the call are captured, and each call site is resolved once: through
 * its source map when Node has one (TypeScript lines under tsx or `--enable-source-maps`), otherwise as
 * the running file's own line.
 */
function addCaller(out: Record<string, unknown>): void {
  const caller = callerBelow(mixin, CALLER_FRAMES);
  if (caller === undefined) return;
  out.module = caller.module;
  out.function = caller.function;
  out.line = caller.line;
}

/** The first call site below `above` outside this module, pino and Node itself. */
function callerBelow(above: (...args: never[]) => unknown, limit: number): Caller | undefined {
  const sites = callSitesBelow(above, limit);
  for (let i = 0; i < sites.length; i++) {
    const site = sites[i];
    const file = site.getFileName() ?? "";
    if (file === SELF || file === SELF_PATH || file.startsWith("node:") || PINO_FILE.test(file)) continue;
    const line = site.getLineNumber() ?? 0;
    const column = site.getColumnNumber() ?? 0;
    const key = `${file}:${line}:${column}`;
    let caller = callers.get(key);
    if (caller === undefined) {
      caller = resolveCaller(file, site.getFunctionName() ?? "", line, column);
      if (callers.size >= CALLER_CACHE_MAX) callers.clear();
      callers.set(key, caller);
    }
    return caller;
  }
  return undefined;
}

function resolveCaller(file: string, functionName: string, line: number, column: number): Caller {
  let source = file;
  let sourceLine = line;
  const origin = findSourceMap(file)?.findOrigin(line, column);
  if (origin !== undefined && "fileName" in origin) {
    source = origin.fileName;
    sourceLine = origin.lineNumber;
  }
  const filePath = source.startsWith("file://") ? fileURLToPath(source) : source;
  const moduleName = path.relative(CWD, filePath) || filePath;
  const name = functionName || "<anonymous>";
  return {
    module: moduleName,
    function: name,
    line: sourceLine,
    json: `,"module":${JSON.stringify(moduleName)},"function":${JSON.stringify(name)},"line":${sourceLine}`,
  };
}

let stampMs = 0;
let stamp = "";

/** The line's time; formatted once per millisecond, as a busy server writes many lines within one. */
function timestamp(): string {
  const ms = Date.now();
  if (ms !== stampMs) {
    stampMs = ms;
    stamp = `,"timestamp":"${new Date(ms).toISOString()}"`;
  }
  return stamp;
}

/** The options of the one pino instance; nothing here depends on the configuration. */
export function loggerOptions(level: LogLevelName): LoggerOptions {
  return {
    level,
    base: null,
    messageKey: "message",
    errorKey: "exception",
    timestamp,
    formatters: {
      level: (_label, number) => ({ level: LEVEL_NAMES[number] ?? "INFO" }),
      log: formatLogObject,
    },
    mixin,
    mixinMergeStrategy: mergeMixin,
    serializers: { exception: formatException },
  };
}

/**
 * Until logging is configured (and for CLI subcommands and tests that never configure it) lines go to
 * stdout synchronously: no worker thread for a process that logs a handful of lines.
 */
const earlyStdout = pino.destination({ dest: 1, sync: true });

const METADATA = Symbol.for("pino.metadata");

type MetadataStream = DestinationStream & {
  [METADATA]?: boolean;
  lastLevel?: number;
  lastMsg?: string;
  lastObj?: object;
  lastTime?: string;
  lastLogger?: Logger;
  flush?: (cb: (err?: Error | null) => void) => void;
  flushSync?: () => void;
};

/**
 * The root logger's one destination for the life of the process; configuration points it at the streams
 * of the moment. It asks pino for each line's metadata (`destination[Symbol.for('pino.metadata')]`, pino's
 * documented interface for destinations) and passes it on to a stream that asks for it too: a multistream
 * picks its destinations by the line's level.
 */
class SwitchableDestination implements MetadataStream {
  readonly [METADATA] = true;
  lastLevel?: number;
  lastMsg?: string;
  lastObj?: object;
  lastTime?: string;
  lastLogger?: Logger;

  constructor(public target: MetadataStream) {}

  write(line: string): void {
    const target = this.target;
    if (target[METADATA] === true) {
      target.lastLevel = this.lastLevel;
      target.lastMsg = this.lastMsg;
      target.lastObj = this.lastObj;
      target.lastTime = this.lastTime;
      target.lastLogger = this.lastLogger;
    }
    target.write(line);
  }

  flush(cb: (err?: Error | null) => void): void {
    if (typeof this.target.flush === "function") this.target.flush(cb);
    else cb();
  }

  flushSync(): void {
    this.target.flushSync?.();
  }
}

const destination = new SwitchableDestination(earlyStdout);

/**
 * The one root logger, alive for the whole process. Configuration changes its level and destination in
 * place instead of replacing it, so component loggers created at module load keep following it.
 */
const root: Logger = pino(loggerOptions("info"), destination);

/** Values a line built by `writeFlatLine` can carry: what the request log writes. */
export type FlatValue = string | number | undefined;

const FLAT_LEVELS = {
  debug: { number: 20, head: `{"level":${JSON.stringify(LEVEL_NAMES[20])}` },
  info: { number: 30, head: `{"level":${JSON.stringify(LEVEL_NAMES[30])}` },
} as const;

/** A logger's bindings as they follow the timestamp in its lines (`,"logger":"i3xd.http"`). */
const bindingsJson = new WeakMap<Logger, string>();

function bindingsOf(logger: Logger): string {
  let json = bindingsJson.get(logger);
  if (json === undefined) {
    json = "";
    for (const [key, value] of Object.entries(logger.bindings())) {
      json += `,${JSON.stringify(key)}:${JSON.stringify(value)}`;
    }
    bindingsJson.set(logger, json);
  }
  return json;
}

/**
 * Writes the line `logger[level](fields, message)` would write, byte for byte (same keys, order and
 * escaping, the request context's ids included; test/observability/flat-lines.test.ts compares them),
 * straight to the root logger's destination. Every request writes two such lines; through pino's generic
 * path (mixin object, merge, redaction walk, per-key serializing) they cost more CPU per request than the
 * benchmark's side-by-side runs let pass (docs/performance-notes.md). Built from what this module owns (the
 * level names, the timestamp, the destination) and pino's public `bindings()`: for loggers from
 * `getLogger` whose bindings stay as made, with flat fields whose keys are plain identifiers and never
 * secret-named (so redaction has nothing to do) — the request log's. The caller checks the level. With
 * `LOG_CALLER` on, the caller is the one frame below this function.
 */
export function writeFlatLine(
  logger: Logger,
  level: keyof typeof FLAT_LEVELS,
  fields: Record<string, FlatValue>,
  message: string,
): void {
  // Captured first: only its own caller is below this function.
  const caller = captureCaller ? callerBelow(writeFlatLine, 1) : undefined;
  const { number, head } = FLAT_LEVELS[level];
  const time = timestamp();
  let line = head + time + bindingsOf(logger);
  const ctx = currentContext();
  if (ctx !== undefined) {
    line += `,"request_id":${JSON.stringify(ctx.requestId)}`;
    if (ctx.userId !== undefined) line += `,"user_id":${JSON.stringify(ctx.userId)}`;
    if (ctx.traceId !== undefined) line += `,"trace_id":"${ctx.traceId}"`;
    if (ctx.spanId !== undefined) line += `,"span_id":"${ctx.spanId}"`;
  }
  if (caller !== undefined) line += caller.json;
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined) continue;
    line += `,"${key}":${typeof value === "string" ? JSON.stringify(redactKeys(value)) : Number.isFinite(value) ? value : "null"}`;
  }
  line += `,"message":${JSON.stringify(message)}}\n`;
  // What pino leaves on a destination that asks for it, so a multistream behind it picks by level.
  destination.lastLevel = number;
  destination.lastObj = fields;
  destination.lastMsg = message;
  destination.lastTime = time.slice(time.indexOf(":") + 1);
  destination.lastLogger = logger;
  destination.write(line);
}

/** Streams the current configuration created (and so must flush and end); fd 1 itself is never closed. */
let owned: DestinationStream[] = [];

const components = new Map<string, Logger>();

/**
 * A component logger (`i3xd.http`, `i3xd.store`, …). Safe to call at module load: child loggers take
 * their level and destination from the root through the prototype chain, so they follow
 * `configureLogging` without a lookup per call.
 */
export function getLogger(component: string): Logger {
  let logger = components.get(component);
  if (logger === undefined) {
    logger = root.child({ logger: component });
    components.set(component, logger);
  }
  return logger;
}

export function rootLogger(): Logger {
  return root;
}

/**
 * Points logging at the configured destinations: the file (rotated by pino-roll in a worker thread) when
 * `logFile` is set, otherwise stdout as JSON or, with `logFormat: "pretty"`, through pino-pretty in a
 * worker thread; plus any extra sinks. Replaced destinations are flushed and closed.
 */
export function configureLogging(config: LoggingConfig, extraSinks: readonly LogSink[] = []): void {
  captureCaller = config.logCaller;
  const created: DestinationStream[] = [];
  let primary: DestinationStream = earlyStdout;
  if (config.logLevel !== "silent") {
    primary = new BatchedStream(
      config.logFile
        ? fileTransport(config)
        : config.logFormat === "pretty"
          ? prettyTransport()
          : stdoutTransport(),
    );
    created.push(primary);
  }
  for (const sink of extraSinks) created.push(sink.stream);

  let target = primary;
  if (extraSinks.length > 0 && config.logLevel !== "silent") {
    const level = config.logLevel;
    target = pino.multistream([
      { level, stream: primary },
      ...extraSinks.map((s) => ({ level: s.level ?? level, stream: s.stream })),
    ]);
  }
  switchDestination(target, created);
  root.level = config.logLevel;
}

/**
 * Sets the level and, optionally, a destination of the root logger (tests capture lines this way).
 * The destination is not closed when replaced later; the caller owns it.
 */
export function setRootLogger(level: LogLevelName, destination?: DestinationStream): Logger {
  if (destination) switchDestination(destination, []);
  root.level = level;
  return root;
}

function switchDestination(target: DestinationStream, created: DestinationStream[]): void {
  const previous = owned;
  owned = created;
  destination.target = target;
  for (const stream of previous) endStream(stream);
}

/** Waits until every line logged so far has been handed to its destination. */
export async function flushLogs(): Promise<void> {
  const streams = owned.length > 0 ? owned : [earlyStdout];
  await Promise.all(streams.map(flushStream));
}

function flushStream(stream: DestinationStream): Promise<void> {
  const flush = (stream as { flush?: (cb: (err?: Error | null) => void) => void }).flush;
  if (typeof flush !== "function") return Promise.resolve();
  return new Promise((resolve) => {
    try {
      flush.call(stream, () => resolve());
    } catch {
      resolve();
    }
  });
}

function endStream(stream: DestinationStream): void {
  const s = stream as DestinationStream & { end?: () => void };
  try {
    s.end?.();
  } catch {
    // Already closed: nothing left to flush.
  }
}

/**
 * JSON lines to stdout from a worker thread: the request path only copies the line into shared memory,
 * and lines keep their order even when the process exits or logs at CRITICAL (which flushes).
 */
function stdoutTransport(): DestinationStream {
  return reportErrors(pino.transport({ target: "pino/file", options: { destination: 1 } }), "stdout logging");
}

function fileTransport(config: LoggingConfig): DestinationStream {
  const file = path.resolve(config.logFile as string);
  // Fail at start-up, with the path in the message, rather than later inside the worker thread.
  mkdirSync(path.dirname(file), { recursive: true });
  // pino-roll creates the next file before it deletes the oldest, so it is told to keep one fewer:
  // even in that moment no more than `logFileCount` files exist.
  const keep = Math.max(1, config.logFileCount - 1);
  pruneLogFiles(file, keep);
  const stream = pino.transport({
    target: "pino-roll",
    options: {
      file,
      size: `${config.logFileMaxSize}b`,
      // removeOtherLogFiles counts files left by earlier runs too, so the bound holds across restarts;
      // sync writes (in the worker) make the new file exist before old ones are counted.
      limit: { count: keep, removeOtherLogFiles: true },
      mkdir: true,
      sync: true,
    },
  });
  return reportErrors(stream, `log file ${file}`);
}

/**
 * pino-roll names files `<name>.<n>.<ext>` (`i3xd.log` → `i3xd.1.log`, `i3xd.2.log`, …) and appends to the
 * highest number on start. Files beyond the bound (left by a run with a larger count) go now, not at
 * the first rotation.
 */
export function logFileNames(file: string): { dir: string; pattern: RegExp } {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const dot = base.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot + 1)] : [base, "log"];
  const literal = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return { dir, pattern: new RegExp(`^${literal(stem)}\\.(\\d+)\\.${literal(ext)}$`) };
}

function pruneLogFiles(file: string, keep: number): void {
  const { dir, pattern } = logFileNames(file);
  let numbered: { name: string; n: number }[];
  try {
    numbered = readdirSync(dir)
      .map((name) => ({ name, m: pattern.exec(name) }))
      .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
      .map((f) => ({ name: f.name, n: Number(f.m[1]) }))
      .sort((a, b) => a.n - b.n);
  } catch {
    return;
  }
  for (const f of numbered.slice(0, Math.max(0, numbered.length - keep))) {
    rmSync(path.join(dir, f.name), { force: true });
  }
}

function prettyTransport(): DestinationStream {
  const stream = pino.transport({
    target: "pino-pretty",
    options: {
      destination: 1,
      messageKey: "message",
      timestampKey: "timestamp",
      customLevels: "DEBUG:20,INFO:30,WARNING:40,ERROR:50,CRITICAL:60",
      messageFormat: "[{logger}] {message}",
      ignore: "logger",
    },
  });
  return reportErrors(stream, "pretty log output");
}

/** Longest time a line waits before it is handed to the logging worker thread, ms. */
const BATCH_MS = 10;
/** Waiting lines are handed over at once when they reach this size, bytes (UTF-16 code units). */
const BATCH_SIZE = 64 * 1024;

type InnerStream = DestinationStream & {
  flush?: (cb: (err?: Error | null) => void) => void;
  flushSync?: () => void;
  end?: () => void;
};

/**
 * Hands lines to a worker-thread transport in batches. Every hand-over wakes the worker for a write of its
 * own; at one per line (or per event-loop turn, which is what the transport does by itself) a busy server
 * spent more CPU on those wake-ups than on formatting its request lines. One buffer keeps the order; a
 * CRITICAL line (pino calls `flushSync`), `flushLogs`, replacing the destination and process exit hand
 * over at once, and no line waits longer than BATCH_MS.
 */
export class BatchedStream {
  private pending: string[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onExit = () => this.flushSync();

  constructor(private readonly inner: InnerStream) {
    // Before the transport's own exit handler, which flushes and ends the worker.
    process.prependListener("exit", this.onExit);
  }

  write(line: string): boolean {
    this.pending.push(line);
    this.size += line.length;
    if (this.size >= BATCH_SIZE) this.handOver();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.handOver(), BATCH_MS);
      // Lines still waiting when the process exits are handed over by the exit handler.
      this.timer.unref();
    }
    return true;
  }

  private handOver(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0] : this.pending.join("");
    this.pending = [];
    this.size = 0;
    this.inner.write(text);
  }

  flushSync(): void {
    this.handOver();
    this.inner.flushSync?.();
  }

  flush(cb: (err?: Error | null) => void): void {
    this.handOver();
    if (typeof this.inner.flush === "function") this.inner.flush(cb);
    else cb();
  }

  end(): void {
    this.handOver();
    process.removeListener("exit", this.onExit);
    this.inner.end?.();
  }
}

/** A failing destination must not take the process down through an unhandled 'error' event. */
function reportErrors<T extends DestinationStream>(stream: T, what: string): T {
  (stream as unknown as NodeJS.EventEmitter).on?.("error", (err: Error) => {
    process.stderr.write(`i3xd: ${what} failed: ${err.message}\n`);
  });
  return stream;
}
