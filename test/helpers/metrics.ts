export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (0.0.4) into samples; comments are skipped. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
      }
    }
    const value = m[3] === "+Inf" ? Number.POSITIVE_INFINITY : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

/** Value of the one sample with this name and exactly these labels (0 when absent). */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  const hit = samples.find(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === want.length &&
      want.every(([k, v]) => s.labels[k] === v),
  );
  return hit?.value ?? 0;
}

export async function scrape(baseUrl: string, accept?: string): Promise<{ text: string; type: string }> {
  const res = await fetch(`${baseUrl}/metrics`, { headers: accept ? { accept } : {} });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return { text: await res.text(), type: res.headers.get("content-type") ?? "" };
}

/** The samples of one scrape; `headers` for a server that wants an API key or the metrics token. */
export async function scrapeSamples(
  baseUrl: string,
  headers: Record<string, string> = {},
): Promise<Sample[]> {
  const res = await fetch(`${baseUrl}/metrics`, { headers });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** `cors_rejected_total` of both kinds, from one scrape. */
export async function corsRejections(
  baseUrl: string,
  headers: Record<string, string> = {},
): Promise<{ preflight: number; request: number }> {
  const samples = await scrapeSamples(baseUrl, headers);
  const rejected = (kind: string) => sampleValue(samples, "cors_rejected_total", { kind });
  return { preflight: rejected("preflight"), request: rejected("request") };
}
