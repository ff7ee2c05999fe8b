/** Element construction without innerHTML: every text from the server is set as text, never parsed. */

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name === "class") el.className = String(value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

/** A short rendering of a value for badges and table cells. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toFixed(4));
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function formatTime(timestamp: string): string {
  const d = new Date(timestamp);
  return Number.isNaN(d.getTime()) ? timestamp : d.toLocaleString();
}

/** Links inside the console: `#o/<id>` selects an object, `#t/<id>` a type. */
export function objectLink(elementId: string, text: string = elementId): HTMLAnchorElement {
  return h("a", { href: `#o/${encodeURIComponent(elementId)}` }, text);
}

export function typeLink(elementId: string, text: string = elementId): HTMLAnchorElement {
  return h("a", { href: `#t/${encodeURIComponent(elementId)}` }, text);
}

export function qualityBadge(quality: string): HTMLSpanElement {
  return h("span", { class: `quality q-${quality}`, "data-quality": quality }, quality);
}
