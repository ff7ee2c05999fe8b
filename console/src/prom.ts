/**
 * A minimal reader of the Prometheus text exposition format (0.0.4), enough for the console's health strip:
 * one sample per line as `name{label="value",...} value [timestamp]`; `#` lines (HELP, TYPE, comments) and
 * blank lines are skipped; label values may contain the escapes `\\`, `\"` and `\n`; values may be `NaN`,
 * `+Inf` or `-Inf`. Lines that do not parse are skipped rather than failing the whole scrape.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /** Metric families named by `# TYPE` lines, sampled or not (a labelled counter has no samples until used). */
  declared: Set<string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

export function parsePrometheusText(text: string): Scrape {
  const samples: Sample[] = [];
  const declared = new Set<string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("# TYPE ")) {
      const name = line.split(/\s+/)[2];
      if (name !== undefined) declared.add(name);
    }
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (sample !== undefined) samples.push(sample);
  }
  return { samples, declared };
}

function parseLine(line: string): Sample | undefined {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) return undefined;
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.trimStart();
      if (rest.startsWith("}")) {
        rest = rest.slice(1);
        break;
      }
      const key = LABEL_NAME.exec(rest)?.[0];
      if (key === undefined) return undefined;
      rest = rest.slice(key.length).trimStart();
      if (!rest.startsWith('="')) return undefined;
      rest = rest.slice(2);
      let value = "";
      let i = 0;
      for (; i < rest.length && rest[i] !== '"'; i++) {
        if (rest[i] === "\\" && i + 1 < rest.length) {
          const next = rest[++i];
          value += next === "n" ? "\n" : next;
        } else value += rest[i];
      }
      if (i >= rest.length) return undefined;
      labels[key] = value;
      rest = rest.slice(i + 1).trimStart();
      if (rest.startsWith(",")) rest = rest.slice(1);
    }
  }
  const valueText = rest.trim().split(/\s+/)[0];
  if (valueText === undefined || valueText === "") return undefined;
  const value = parseValue(valueText);
  if (value === undefined) return undefined;
  return { name, labels, value };
}

function parseValue(text: string): number | undefined {
  if (text === "NaN") return Number.NaN;
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  const n = Number(text);
  return Number.isNaN(n) ? undefined : n;
}

/**
 * Sum of a metric's samples whose labels pass `keep`: 0 for a declared family without samples, `undefined`
 * when the server does not have the metric at all.
 */
export function sum(
  scrape: Scrape,
  name: string,
  keep: (labels: Record<string, string>) => boolean = () => true,
): number | undefined {
  let total = 0;
  let found = scrape.declared.has(name);
  for (const s of scrape.samples) {
    if (s.name === name && keep(s.labels)) {
      total += s.value;
      found = true;
    }
  }
  return found ? total : undefined;
}

/**
 * The q-quantile of a histogram from its cumulative buckets (upper bound → count), interpolated linearly
 * inside the bucket as PromQL's histogram_quantile does. `undefined` without observations.
 */
export function histogramQuantile(q: number, buckets: Map<number, number>): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Number.POSITIVE_INFINITY) ?? 0;
  if (total <= 0 || bounds.length === 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const bound of bounds) {
    const count = buckets.get(bound) ?? 0;
    if (count >= rank) {
      // Above the highest finite bound PromQL answers that bound.
      if (bound === Number.POSITIVE_INFINITY) return lowerBound;
      const inBucket = count - lowerCount;
      return inBucket <= 0 ? bound : lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / inBucket;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}
