import { afterAll, describe, expect, it } from "vitest";
import { getLogger, setRootLogger } from "../../src/observability/logger.js";

/**
 * The root logger keeps one destination for its life and points it at the streams configuration sets up
 * (test/observability/flat-lines.test.ts: a multistream behind it still sees each line's level).
 */
describe("the root logger's destination", () => {
  const log = getLogger("i3xd.http");
  afterAll(() => setRootLogger("silent"));

  it("moves to a new destination for loggers made before the switch", () => {
    const first: string[] = [];
    const second: string[] = [];
    setRootLogger("info", { write: (l: string) => first.push(l) });
    log.info("one");
    setRootLogger("info", { write: (l: string) => second.push(l) });
    log.info("two");
    expect(first.map((l) => JSON.parse(l).message)).toEqual(["one"]);
    expect(second.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ level: "INFO", logger: "i3xd.http", message: "two" }),
    ]);
  });
});
