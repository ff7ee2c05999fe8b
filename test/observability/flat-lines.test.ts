import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { runInRequest } from "../../src/observability/context.js";
import {
  configureLogging,
  type FlatValue,
  getLogger,
  setRootLogger,
  writeFlatLine,
} from "../../src/observability/logger.js";

/**
 * The request log builds its two lines without pino's generic walk; what reaches the destination must be
 * exactly what pino itself writes for the same call, or log parsers and the contract tests drift apart.
 */
describe("request log lines built directly", () => {
  const written: string[] = [];
  const capture = { write: (line: string) => written.push(line) };
  setRootLogger("debug", capture);
  afterAll(() => setRootLogger("silent"));
  const log = getLogger("i3xd.http");

  function both(level: "debug" | "info", fields: Record<string, FlatValue>, message: string): string[] {
    written.length = 0;
    // Within one millisecond both lines carry the same timestamp; retry the rare pair that straddles one.
    for (let attempt = 0; attempt < 5; attempt++) {
      written.length = 0;
      log[level](fields, message);
      writeFlatLine(log, level, fields, message);
      if (JSON.parse(written[0]).timestamp === JSON.parse(written[1]).timestamp) break;
    }
    return [...written];
  }

  it("writes the same bytes as pino, inside a request and outside one", () => {
    const started = {
      method: "POST",
      path: "/v1/objects/value?x=1",
      ip: "::ffff:10.1.2.3",
      user_agent: 'curl/8 "quoted" back\\slash \u00e9\u4e2d tab\t newline\n bell\u0007',
    };
    const completed = {
      method: "GET",
      path: "/v1/objects",
      status_code: 404,
      duration_ms: 1.25,
      response_size: undefined,
    };
    const odd = { status_code: Number.NaN, duration_ms: Number.POSITIVE_INFINITY, response_size: 0 };
    const requests = [
      { requestId: "plain-1" },
      {
        requestId: "a5b1c2d3-0000-4000-8000-000000000001",
        userId: 'op "7"',
        traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
        spanId: "00f067aa0ba902b7",
      },
    ];
    const cases: Array<["debug" | "info", Record<string, FlatValue>, string]> = [
      ["info", started, "Request started"],
      ["info", completed, "Request completed"],
      ["debug", odd, "Request completed"],
    ];
    for (const [level, fields, message] of cases) {
      const [byPino, direct] = both(level, fields, message);
      expect(direct).toBe(byPino);
      for (const ctx of requests) {
        const [inPino, inDirect] = runInRequest(ctx, () => both(level, fields, message));
        expect(inDirect).toBe(inPino);
        expect(JSON.parse(inDirect)).toMatchObject({ request_id: ctx.requestId, message });
      }
    }
  });

  it("with LOG_CALLER on, writes the same bytes as pino for a call from the same line", () => {
    configureLogging({
      logLevel: "silent",
      logFormat: "json",
      logFileMaxSize: 1024 * 1024,
      logFileCount: 2,
      logCaller: true,
    });
    setRootLogger("debug", capture);
    try {
      const fields = { method: "POST", path: "/v1/objects/value", status_code: 200 };
      for (let attempt = 0; attempt < 5; attempt++) {
        written.length = 0;
        // Bound functions leave no frame of their own: both lines are logged from the same call site.
        const emitters: Array<(f: typeof fields, message: string) => void> = [
          log.info.bind(log),
          writeFlatLine.bind(null, log, "info"),
        ];
        for (const emit of emitters) emit(fields, "Request completed");
        if (JSON.parse(written[0]).timestamp === JSON.parse(written[1]).timestamp) break;
      }
      expect(written[1]).toBe(written[0]);
      expect(JSON.parse(written[1])).toMatchObject({
        module: "test/observability/flat-lines.test.ts",
        function: expect.any(String),
        line: expect.any(Number),
      });
    } finally {
      configureLogging({
        logLevel: "silent",
        logFormat: "json",
        logFileMaxSize: 1024 * 1024,
        logFileCount: 2,
        logCaller: false,
      });
      setRootLogger("debug", capture);
    }
  });

  it("reaches each destination of a multistream by the line's level, as pino's own lines do", () => {
    const infoOnly: string[] = [];
    const everything: string[] = [];
    setRootLogger(
      "debug",
      pino.multistream([
        { level: "info", stream: { write: (l: string) => infoOnly.push(l) } },
        { level: "debug", stream: { write: (l: string) => everything.push(l) } },
      ]),
    );
    try {
      writeFlatLine(log, "debug", { path: "/health/live" }, "Request started");
      writeFlatLine(log, "info", { path: "/v1/info" }, "Request started");
      log.debug({ path: "/health/ready" }, "Request started");
      log.info({ path: "/v1/namespaces" }, "Request started");
    } finally {
      setRootLogger("debug", capture);
    }
    expect(everything.map((l) => JSON.parse(l).path)).toEqual([
      "/health/live",
      "/v1/info",
      "/health/ready",
      "/v1/namespaces",
    ]);
    expect(infoOnly.map((l) => JSON.parse(l).path)).toEqual(["/v1/info", "/v1/namespaces"]);
  });
});
