import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { postOne, type Vqt } from "./api.js";
import { formatTime, formatValue, h, qualityBadge } from "./dom.js";

const RANGES: [string, number][] = [
  ["15 min", 15 * 60_000],
  ["1 h", 60 * 60_000],
  ["24 h", 24 * 60 * 60_000],
];
const SERIES_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
const AXIS_NUMBER = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });
/** Rows shown in the table of non-numeric values; the CSV has them all. */
const TABLE_ROWS = 200;

/**
 * One object's history: a range (last 15 min, 1 h, 24 h, or from/to), numeric values plotted with uPlot
 * (a number per point, or each numeric field of a structured value as its own series), everything else
 * as a table, and the whole range as CSV.
 */
export class HistoryView {
  readonly element: HTMLElement;
  private readonly plotArea = h("div", { class: "plot", "data-points": "0" });
  private readonly tableArea = h("div", { class: "table-wrap" });
  private readonly status = h("p", { class: "hint", role: "status" });
  private readonly from = h("input", { type: "datetime-local", "aria-label": "From" });
  private readonly to = h("input", { type: "datetime-local", "aria-label": "To" });
  private readonly download = h("button", { type: "button", disabled: true }, "Download CSV");
  private readonly buttons: HTMLButtonElement[];
  private plot: uPlot | undefined;
  private values: Vqt[] = [];
  private readonly resize = new ResizeObserver(() => this.plot?.setSize(this.size()));

  constructor(private readonly elementId: string) {
    const buttons = RANGES.map(([label, ms]) => {
      const b = h("button", { type: "button", class: "range", "aria-pressed": "false" }, label);
      b.addEventListener("click", () => {
        this.press(b);
        const end = new Date();
        void this.load(new Date(end.getTime() - ms), end);
      });
      return b;
    });
    const apply = h("button", { type: "button" }, "Show range");
    apply.addEventListener("click", () => {
      const start = new Date(this.from.value);
      const end = new Date(this.to.value);
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || start >= end) {
        this.status.textContent = "Choose a start before the end.";
        return;
      }
      this.press(undefined);
      void this.load(start, end);
    });
    this.download.addEventListener("click", () => this.saveCsv());
    this.buttons = buttons;
    this.element = h(
      "section",
      { class: "card history", "aria-label": "History" },
      h("h3", {}, "History"),
      h(
        "div",
        { class: "toolbar" },
        h("div", { class: "ranges", role: "group", "aria-label": "Range" }, buttons),
        h("div", { class: "custom" }, this.from, this.to, apply),
        this.download,
      ),
      this.status,
      this.plotArea,
      this.tableArea,
    );
    this.resize.observe(this.plotArea);
  }

  /** Shows the last hour. */
  start(): void {
    this.buttons[1]?.click();
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
  }

  private press(pressed: HTMLButtonElement | undefined): void {
    for (const b of this.buttons) b.setAttribute("aria-pressed", String(b === pressed));
  }

  private async load(start: Date, end: Date): Promise<void> {
    this.from.value = toLocalInput(start);
    this.to.value = toLocalInput(end);
    this.status.textContent = "Loading…";
    try {
      const result = await postOne<{ values: Vqt[] }>("/v1/objects/history", {
        elementIds: [this.elementId],
        startTime: start.toISOString(),
        endTime: end.toISOString(),
      });
      this.values = [...result.values].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    } catch (err) {
      this.values = [];
      this.status.textContent = `History could not be read: ${(err as Error).message}`;
      this.render();
      return;
    }
    const n = this.values.length;
    this.status.textContent = `${n} value${n === 1 ? "" : "s"} from ${start.toLocaleString()} to ${end.toLocaleString()}`;
    this.render();
  }

  private render(): void {
    this.plot?.destroy();
    this.plot = undefined;
    this.plotArea.replaceChildren();
    this.tableArea.replaceChildren();
    this.download.disabled = this.values.length === 0;
    const series = numericSeries(this.values);
    const plotted = series.length > 0;
    if (plotted) {
      const xs = this.values.map((v) => Date.parse(v.timestamp) / 1000);
      const data: uPlot.AlignedData = [xs, ...series.map((s) => s.points)];
      const opts: uPlot.Options = {
        ...this.size(),
        scales: { x: { time: true } },
        axes: [{}, { size: 60, values: (_u, ticks) => ticks.map((t) => AXIS_NUMBER.format(t)) }],
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: SERIES_COLOURS[i % SERIES_COLOURS.length],
            width: 1.5,
            spanGaps: false,
          })),
        ],
      };
      this.plot = new uPlot(opts, data, this.plotArea);
    }
    const points = series.reduce((n, s) => n + s.points.filter((p) => p !== null).length, 0);
    this.plotArea.dataset.points = String(points);
    // Values that were not plotted (strings, booleans, Bad/GoodNoData points) are listed.
    const rows = plotted
      ? this.values.filter((v) => typeof v.value !== "number" && !isObject(v.value))
      : this.values;
    if (rows.length > 0) this.tableArea.append(valueTable(rows.slice(-TABLE_ROWS).reverse(), rows.length));
  }

  private size(): { width: number; height: number } {
    const width = Math.max(240, this.plotArea.clientWidth || 600);
    return { width, height: Math.round(Math.min(320, Math.max(180, width * 0.4))) };
  }

  private saveCsv(): void {
    const lines = ["timestamp,quality,value"];
    for (const v of this.values) {
      const value =
        v.value === null || v.value === undefined
          ? ""
          : typeof v.value === "object"
            ? JSON.stringify(v.value)
            : String(v.value);
      lines.push([v.timestamp, v.quality, csvField(value)].join(","));
    }
    const url = URL.createObjectURL(new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
    const link = h("a", { href: url, download: `${this.elementId}-history.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

interface Series {
  label: string;
  points: (number | null)[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A number per point makes one series; structured values make one series per numeric field. */
function numericSeries(values: Vqt[]): Series[] {
  if (values.some((v) => typeof v.value === "number")) {
    return [{ label: "value", points: values.map((v) => (typeof v.value === "number" ? v.value : null)) }];
  }
  const fields = new Set<string>();
  for (const v of values) {
    if (!isObject(v.value)) continue;
    for (const [k, x] of Object.entries(v.value)) if (typeof x === "number") fields.add(k);
  }
  return [...fields].map((field) => ({
    label: field,
    points: values.map((v) => {
      const x = isObject(v.value) ? v.value[field] : undefined;
      return typeof x === "number" ? x : null;
    }),
  }));
}

function valueTable(rows: Vqt[], total: number): HTMLElement {
  return h(
    "table",
    { class: "values" },
    h("caption", {}, total > rows.length ? `Latest ${rows.length} of ${total} values` : `${total} values`),
    h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Quality"), h("th", {}, "Value"))),
    h(
      "tbody",
      {},
      rows.map((v) =>
        h(
          "tr",
          {},
          h("td", {}, formatTime(v.timestamp)),
          h("td", {}, qualityBadge(v.quality)),
          h("td", {}, formatValue(v.value)),
        ),
      ),
    ),
  );
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function toLocalInput(d: Date): string {
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}
