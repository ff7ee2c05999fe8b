import { describe, expect, it } from "vitest";
import { histogramQuantile, parsePrometheusText, sum } from "../../console/src/prom.js";
import { useTestServer } from "../helpers/server.js";

describe("the console's Prometheus text reader", () => {
  const t = useTestServer();

  it("reads the server's own /metrics: every sample line, with labels and values", async () => {
    await fetch(`${t.url}/v1/namespaces`);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const scrape = parsePrometheusText(text);
    const sampleLines = text.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    expect(scrape.samples).toHaveLength(sampleLines.length);
    const namespaces = scrape.samples.find(
      (s) => s.name === "entity_requests_total" && s.labels.endpoint === "/namespaces",
    );
    expect(namespaces).toEqual({
      name: "entity_requests_total",
      labels: { method: "GET", endpoint: "/namespaces", status: "200" },
      value: 1,
    });
    // A labelled counter nothing has counted yet is declared without samples: 0, not missing.
    expect(scrape.declared.has("telemetry_dropped_total")).toBe(true);
    expect(sum(scrape, "telemetry_dropped_total")).toBe(0);
    expect(sum(scrape, "no_such_metric")).toBeUndefined();
  });

  it("handles escapes, special values, timestamps and lines it cannot read", () => {
    const scrape = parsePrometheusText(
      [
        "# HELP x A help text with a \\n newline",
        "# TYPE x gauge",
        'x{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"} 1.5 1700000000000',
        "y NaN",
        'z{le="+Inf"} +Inf',
        "w -Inf",
        'broken{unterminated="x} 1',
        "{no_name} 1",
        "novalue",
        "  spaced   42  ",
      ].join("\n"),
    );
    expect(scrape.samples.map((s) => s.name)).toEqual(["x", "y", "z", "w", "spaced"]);
    expect(scrape.samples[0]).toEqual({
      name: "x",
      labels: { path: "C:\\dir", quote: 'say "hi"', nl: "a\nb" },
      value: 1.5,
    });
    expect(scrape.samples[1].value).toBeNaN();
    expect(scrape.samples[2].value).toBe(Number.POSITIVE_INFINITY);
    expect(scrape.samples[3].value).toBe(Number.NEGATIVE_INFINITY);
    expect(scrape.samples[4].value).toBe(42);
  });

  it("computes histogram quantiles as PromQL's histogram_quantile does", () => {
    // 100 observations: 50 up to 0.1 s, 40 more up to 0.5 s, 10 more up to 1 s.
    const buckets = new Map([
      [0.1, 50],
      [0.5, 90],
      [1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.1);
    expect(histogramQuantile(0.7, buckets)).toBeCloseTo(0.3);
    expect(histogramQuantile(0.95, buckets)).toBeCloseTo(0.75);
    // Beyond the highest finite bound: that bound.
    expect(
      histogramQuantile(
        0.99,
        new Map([
          [0.1, 1],
          [Number.POSITIVE_INFINITY, 10],
        ]),
      ),
    ).toBe(0.1);
    expect(histogramQuantile(0.95, new Map([[Number.POSITIVE_INFINITY, 0]]))).toBeUndefined();
  });
});
