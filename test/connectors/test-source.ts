import type {
  Connector,
  ConnectorContext,
  ConnectorHealth,
  ConnectorKind,
  ConnectorSettings,
  SourcePoint,
  WriteBackItem,
  WriteBackResult,
} from "../../src/connectors/connector.js";

/**
 * A source for testing the framework alone, driven by the test instead of a broker: the framework is the
 * thing under test here, and the real kinds (MQTT, Sparkplug B, OPC UA) are tested against real brokers
 * and servers in their own tests. It implements the contract as a kind does: it creates its objects through
 * `applyModel`, submits points, reports its state and answers write-backs.
 *
 * Options: `prefix` (ids: `<prefix>` for the folder, `<prefix>.e0` … for its readings), `elements`,
 * `canWrite` (a `write` method at all), `refuse` (ids whose write-back the source refuses), `password`
 * (carried only to check `${VAR}` substitution; never used), `failStart` (start() throws this message),
 * `failCreate` (the kind's create throws it), `tickMs` (emits a counter by itself), `removeAfterTicks`
 * (then removes `<prefix>.e1` through the context).
 */
export const TEST_KIND = "test-source";

export interface TestSourceOptions {
  prefix: string;
  elements?: number;
  canWrite?: boolean;
  refuse?: string[];
  password?: string;
  /** start() fails with this message. */
  failStart?: string;
  /** The kind's create() throws this message (a kind that cannot even be built). */
  failCreate?: string;
  /** Emits a counter to `<prefix>.e0` this often, by itself (for a server in a child process). */
  tickMs?: number;
  /** With `tickMs`: after this many ticks, removes `<prefix>.e1` from the model. */
  removeAfterTicks?: number;
}

export class TestSource implements Connector {
  readonly name: string;
  readonly options: TestSourceOptions;
  context: ConnectorContext | undefined;
  started = false;
  stopped = false;
  readonly written: WriteBackItem[] = [];
  emitted = 0;
  private ticker: NodeJS.Timeout | undefined;
  write?: (items: readonly WriteBackItem[]) => Promise<WriteBackResult[]>;

  constructor(readonly settings: ConnectorSettings) {
    this.name = settings.name;
    this.options = settings.options as unknown as TestSourceOptions;
    if (this.options.canWrite) {
      this.write = async (items) =>
        items.map((item) => {
          if (this.options.refuse?.includes(item.elementId)) {
            return { ok: false, status: 403, detail: `${item.elementId} is read-only at the source` };
          }
          this.written.push(item);
          return { ok: true };
        });
    }
  }

  ids(): string[] {
    return Array.from({ length: this.options.elements ?? 3 }, (_, i) => `${this.options.prefix}.e${i}`);
  }

  async start(context: ConnectorContext): Promise<void> {
    this.context = context;
    if (this.options.failStart !== undefined) throw new Error(this.options.failStart);
    const { prefix } = this.options;
    await context.applyModel({
      namespaces: [{ uri: `urn:test:${prefix}`, displayName: prefix }],
      objectTypes: [
        {
          elementId: `${prefix}-folder-type`,
          displayName: "Folder",
          namespaceUri: `urn:test:${prefix}`,
          schema: { type: "null" },
        },
        {
          elementId: `${prefix}-reading-type`,
          displayName: "Reading",
          namespaceUri: `urn:test:${prefix}`,
          schema: { type: "number" },
        },
      ],
      objects: [
        { elementId: prefix, displayName: prefix, typeElementId: `${prefix}-folder-type`, parentId: null },
        ...this.ids().map((id) => ({
          elementId: id,
          displayName: id,
          typeElementId: `${prefix}-reading-type`,
          parentId: prefix,
          system: { source: `plant/${id}` },
        })),
      ],
    });
    this.started = true;
    context.setState("up");
    if (this.options.tickMs !== undefined) {
      let n = 0;
      this.ticker = setInterval(() => {
        this.emit([{ elementId: `${prefix}.e0`, value: n++, quality: "Good", tsUs: Date.now() * 1000 }]);
        if (n === this.options.removeAfterTicks) void context.removeModel([`${prefix}.e1`]);
      }, this.options.tickMs);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
  }

  health(): ConnectorHealth {
    return { state: this.started && !this.stopped ? "up" : "stopped", extra: { emitted: this.emitted } };
  }

  /** Submits one message carrying these points, as a source would on receiving it. */
  emit(points: SourcePoint[], bytes = 64 * points.length): boolean {
    const ctx = this.ctx();
    this.emitted++;
    ctx.count("received");
    return ctx.submit(points, 1, bytes);
  }

  down(detail = "test source lost", atUs?: number): void {
    this.ctx().setState("down", detail, atUs);
  }

  up(): void {
    this.ctx().reconnected();
    this.ctx().setState("up");
  }

  private ctx(): ConnectorContext {
    if (this.context === undefined) throw new Error(`${this.name} has not started`);
    return this.context;
  }
}

/** Every instance the kind created in this process, newest last. */
export const instances: TestSource[] = [];

export const testSourceKind: ConnectorKind = {
  kind: TEST_KIND,
  optionsSchema: {
    type: "object",
    properties: {
      prefix: { type: "string", minLength: 1 },
      elements: { type: "integer", minimum: 1, maximum: 100_000 },
      canWrite: { type: "boolean" },
      refuse: { type: "array", items: { type: "string" } },
      password: { type: "string" },
      failStart: { type: "string" },
      failCreate: { type: "string" },
      tickMs: { type: "integer", minimum: 10 },
      removeAfterTicks: { type: "integer", minimum: 1 },
    },
    required: ["prefix"],
    additionalProperties: false,
  },
  create(settings) {
    const failCreate = (settings.options as unknown as TestSourceOptions).failCreate;
    if (failCreate !== undefined) throw new Error(failCreate);
    const source = new TestSource(settings);
    instances.push(source);
    return source;
  },
};

/** The running instance of connector `name` whose server's data lives in `dataDir` (several may run). */
export function runningSource(name: string, dataDir?: string): TestSource | undefined {
  return instances.findLast(
    (s) =>
      s.name === name &&
      s.started &&
      !s.stopped &&
      (dataDir === undefined || s.context?.dataDir.startsWith(dataDir) === true),
  );
}

/** Waits until `check` answers something other than undefined/false; fails after `deadlineMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  deadlineMs = 10_000,
): Promise<NonNullable<T>> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error("condition not reached before the deadline");
    await new Promise((r) => setTimeout(r, 25));
  }
}
