import {
  ApiError,
  type CurrentValue,
  currentValues,
  type I3xObject,
  type ObjectType,
  postOne,
  type RelatedEntry,
  relatedOf,
  type Vqt,
} from "./api.js";
import { formatTime, formatValue, h, objectLink, qualityBadge, typeLink } from "./dom.js";
import { HistoryView } from "./history.js";

/** What the detail pane shows for one object; live updates go to `showValue`. */
export class ObjectDetail {
  readonly element = h("article", { class: "object" });
  /** The object and its components: the values this pane keeps current. */
  watched: string[] = [];
  private readonly valueCards = new Map<string, HTMLElement>();
  private history: HistoryView | undefined;

  constructor(readonly elementId: string) {}

  async load(): Promise<void> {
    const [object, related, values] = await Promise.all([
      postOne<I3xObject>("/v1/objects/list", { elementIds: [this.elementId], includeMetadata: true }),
      relatedOf(this.elementId),
      currentValues([this.elementId], 2),
    ]);
    const type = await postOne<ObjectType>("/v1/objecttypes/query", {
      elementIds: [object.typeElementId],
    }).catch((err: unknown) => (err instanceof ApiError ? undefined : Promise.reject(err)));
    const current = values.get(this.elementId);
    const componentIds = Object.keys(current?.components ?? {});
    this.watched = [this.elementId, ...componentIds];
    this.history = new HistoryView(this.elementId);

    this.element.replaceChildren(
      heading(object),
      h(
        "div",
        { class: "cards" },
        this.valueSection(current),
        h(
          "section",
          { class: "card", "aria-label": "Object" },
          h("h3", {}, "Object"),
          h(
            "dl",
            {},
            field("Type", typeLink(object.typeElementId, type?.displayName ?? object.typeElementId)),
            field("Parent", object.parentId === null ? "none (root)" : objectLink(object.parentId)),
            field("Composition", object.isComposition ? "yes" : "no"),
            field("Extended", object.isExtended ? "yes" : "no"),
          ),
          object.metadata ? h("details", {}, h("summary", {}, "Metadata"), json(object.metadata)) : null,
          type ? h("details", {}, h("summary", {}, "Type schema"), json(type.schema)) : null,
        ),
        relationshipSection(related),
      ),
      this.history.element,
    );
    this.history.start();
  }

  showValue(elementId: string, vqt: Vqt): void {
    const card = this.valueCards.get(elementId);
    if (card !== undefined) card.replaceChildren(...vqtParts(vqt));
  }

  destroy(): void {
    this.history?.destroy();
  }

  private valueSection(current: CurrentValue | undefined): HTMLElement {
    const own = h(
      "div",
      { class: "vqt", "data-element-id": this.elementId },
      current ? vqtParts(current) : "No value",
    );
    this.valueCards.set(this.elementId, own);
    const components = Object.entries(current?.components ?? {}).map(([id, vqt]) => {
      const cell = h("div", { class: "vqt", "data-element-id": id }, vqtParts(vqt));
      this.valueCards.set(id, cell);
      return h("li", {}, objectLink(id), cell);
    });
    return h(
      "section",
      { class: "card", "aria-label": "Current value" },
      h("h3", {}, "Current value"),
      own,
      components.length > 0 ? h("h4", {}, "Components") : null,
      components.length > 0 ? h("ul", { class: "components" }, components) : null,
    );
  }
}

/** A type's page: its namespace, version, relationships to other types and JSON schema. */
export async function typeDetail(elementId: string): Promise<HTMLElement> {
  const type = await postOne<ObjectType>("/v1/objecttypes/query", { elementIds: [elementId] });
  return h(
    "article",
    { class: "type" },
    heading(type),
    h(
      "section",
      { class: "card" },
      h(
        "dl",
        {},
        field("Namespace", type.namespaceUri),
        field("Source type", type.sourceTypeId ?? "—"),
        field("Version", type.version ?? "—"),
      ),
      type.related
        ? h("details", { open: true }, h("summary", {}, "Related types"), json(type.related))
        : null,
      h("h3", {}, "Schema"),
      json(type.schema),
    ),
  );
}

function vqtParts(vqt: Vqt): Node[] {
  const structured = vqt.value !== null && typeof vqt.value === "object";
  return [
    structured ? json(vqt.value) : h("span", { class: "value" }, formatValue(vqt.value)),
    qualityBadge(vqt.quality),
    h("time", { datetime: vqt.timestamp, class: "timestamp" }, formatTime(vqt.timestamp)),
  ];
}

/** Every relationship, in both directions (the server reports each edge from this object's side). */
function relationshipSection(related: RelatedEntry[]): HTMLElement {
  const byType = new Map<string, RelatedEntry[]>();
  for (const r of related) byType.set(r.sourceRelationship, [...(byType.get(r.sourceRelationship) ?? []), r]);
  return h(
    "section",
    { class: "card", "aria-label": "Relationships" },
    h("h3", {}, "Relationships"),
    byType.size === 0
      ? h("p", { class: "hint" }, "None")
      : h(
          "dl",
          { class: "relationships" },
          [...byType].flatMap(([name, entries]) => [
            h("dt", {}, name),
            h(
              "dd",
              {},
              entries.map((e) =>
                h("span", { class: "rel" }, objectLink(e.object.elementId, e.object.displayName)),
              ),
            ),
          ]),
        ),
  );
}

function heading(element: { displayName: string; elementId: string }): HTMLElement {
  return h(
    "header",
    { class: "object-head" },
    h("h2", {}, element.displayName),
    h("code", { class: "element-id" }, element.elementId),
  );
}

function field(label: string, value: Node | string): Node[] {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function json(value: unknown): HTMLElement {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}
