import { HAS_CHILDREN, HAS_COMPONENT } from "../../src/domain/model.js";
import { getResult, type I3xObject, relatedOf, type Vqt } from "./api.js";
import { formatValue, h } from "./dom.js";

interface TreeNode {
  object: I3xObject;
  item: HTMLDivElement;
  row: HTMLDivElement;
  badge: HTMLSpanElement;
  group: HTMLDivElement;
  parent: TreeNode | undefined;
  /** undefined until the node was expanded once (children are read lazily). */
  children: TreeNode[] | undefined;
  expanded: boolean;
}

export interface TreeEvents {
  select(elementId: string): void;
  /** The set of objects shown in the tree changed (expanded or collapsed). */
  visibleChanged(elementIds: string[]): void;
  error(err: unknown): void;
}

/**
 * The object tree as an ARIA tree view: the `parentId` hierarchy, children read when a node is first
 * expanded (`HasChildren`), composition children (`HasComponent`) marked as components. One tab stop;
 * arrows move and expand/collapse, Home/End jump, Enter or Space selects.
 */
export class ObjectTree {
  private readonly nodes = new Map<string, TreeNode[]>();
  private roots: TreeNode[] = [];
  private active: TreeNode | undefined;
  private selectedId: string | undefined;

  constructor(
    private readonly list: HTMLElement,
    private readonly events: TreeEvents,
  ) {
    list.addEventListener("keydown", (e) => this.onKey(e));
  }

  async load(): Promise<void> {
    let roots = await getResult<I3xObject[]>("/v1/objects?root=true");
    if (roots.length === 0) {
      // A key restricted to element-id prefixes may not see the roots: start from what it may see.
      const all = await getResult<I3xObject[]>("/v1/objects");
      const ids = new Set(all.map((o) => o.elementId));
      roots = all.filter((o) => o.parentId === null || !ids.has(o.parentId));
    }
    this.list.replaceChildren();
    this.nodes.clear();
    this.roots = roots.map((o) => this.createNode(o, undefined, false));
    this.list.append(...this.roots.map((n) => n.item));
    if (this.roots.length === 0) this.list.append(h("p", { class: "hint" }, "No objects visible."));
    this.setActive(this.roots[0], false);
    this.announceVisible();
  }

  /** Objects currently shown (roots and the children of expanded nodes). */
  visibleIds(): string[] {
    return this.visibleNodes().map((n) => n.object.elementId);
  }

  showValue(elementId: string, vqt: Vqt): void {
    for (const node of this.nodes.get(elementId) ?? []) {
      node.badge.textContent = summarize(vqt.value);
      node.badge.className = `badge q-${vqt.quality}`;
      node.badge.dataset.quality = vqt.quality;
      node.badge.title = `${vqt.quality} at ${vqt.timestamp}`;
    }
  }

  /** Marks the selected object (when it is in the tree) without moving focus. */
  markSelected(elementId: string | undefined): void {
    this.selectedId = elementId;
    for (const [id, list] of this.nodes) {
      for (const node of list) node.item.setAttribute("aria-selected", String(id === elementId));
    }
    const node = elementId === undefined ? undefined : this.nodes.get(elementId)?.[0];
    if (node !== undefined) this.setActive(node, false);
  }

  private createNode(object: I3xObject, parent: TreeNode | undefined, component: boolean): TreeNode {
    const level = parent === undefined ? 1 : Number(parent.item.getAttribute("aria-level")) + 1;
    const badge = h("span", { class: "badge" });
    const twisty = h("span", { class: "twisty", "aria-hidden": "true" });
    const row = h(
      "div",
      { class: "row" },
      twisty,
      h("span", { class: "name" }, object.displayName),
      component
        ? h("span", { class: "tag", title: "HasComponent: part of its parent's value" }, "component")
        : null,
      badge,
    );
    const group = h("div", { role: "group" });
    const item = h(
      "div",
      {
        role: "treeitem",
        "aria-level": String(level),
        "aria-expanded": "false",
        "aria-selected": String(object.elementId === this.selectedId),
        "data-element-id": object.elementId,
        tabindex: "-1",
        title: object.elementId,
      },
      row,
      group,
    );
    const node: TreeNode = { object, item, row, badge, group, parent, children: undefined, expanded: false };
    const same = this.nodes.get(object.elementId) ?? [];
    same.push(node);
    this.nodes.set(object.elementId, same);
    twisty.addEventListener("click", (e) => {
      e.stopPropagation();
      this.setActive(node, true);
      void this.toggle(node);
    });
    row.addEventListener("click", () => {
      this.setActive(node, true);
      this.events.select(object.elementId);
    });
    return node;
  }

  private async toggle(node: TreeNode): Promise<void> {
    if (node.expanded) this.collapse(node);
    else await this.expand(node);
  }

  private async expand(node: TreeNode): Promise<void> {
    if (node.expanded || node.item.getAttribute("aria-expanded") === null) return;
    if (node.children === undefined) {
      node.item.setAttribute("aria-busy", "true");
      try {
        node.children = await this.readChildren(node);
      } catch (err) {
        this.events.error(err);
        return;
      } finally {
        node.item.removeAttribute("aria-busy");
      }
      node.group.append(...node.children.map((c) => c.item));
    }
    if (node.children.length === 0) {
      // A leaf: no expander any more.
      node.item.removeAttribute("aria-expanded");
      return;
    }
    node.expanded = true;
    node.item.setAttribute("aria-expanded", "true");
    this.announceVisible();
  }

  private collapse(node: TreeNode): void {
    if (!node.expanded) return;
    node.expanded = false;
    node.item.setAttribute("aria-expanded", "false");
    this.announceVisible();
  }

  private async readChildren(node: TreeNode): Promise<TreeNode[]> {
    const related = await relatedOf(node.object.elementId);
    const componentIds = new Set(
      related.filter((r) => r.sourceRelationship === HAS_COMPONENT).map((r) => r.object.elementId),
    );
    const children = new Map<string, I3xObject>();
    for (const r of related) {
      // Hierarchy children, and components that are not also hierarchy children.
      if (r.sourceRelationship === HAS_CHILDREN || r.sourceRelationship === HAS_COMPONENT)
        children.set(r.object.elementId, r.object);
    }
    return [...children.values()].map((o) => this.createNode(o, node, componentIds.has(o.elementId)));
  }

  private visibleNodes(): TreeNode[] {
    const out: TreeNode[] = [];
    const walk = (list: TreeNode[]) => {
      for (const n of list) {
        out.push(n);
        if (n.expanded && n.children) walk(n.children);
      }
    };
    walk(this.roots);
    return out;
  }

  private setActive(node: TreeNode | undefined, focus: boolean): void {
    if (node === undefined) return;
    if (this.active !== undefined) this.active.item.tabIndex = -1;
    this.active = node;
    node.item.tabIndex = 0;
    if (focus) node.item.focus();
  }

  private announceVisible(): void {
    this.events.visibleChanged(this.visibleIds());
  }

  private onKey(e: KeyboardEvent): void {
    const node = this.active;
    if (node === undefined) return;
    const visible = this.visibleNodes();
    const at = visible.indexOf(node);
    let handled = true;
    switch (e.key) {
      case "ArrowDown":
        this.setActive(visible[Math.min(at + 1, visible.length - 1)], true);
        break;
      case "ArrowUp":
        this.setActive(visible[Math.max(at - 1, 0)], true);
        break;
      case "Home":
        this.setActive(visible[0], true);
        break;
      case "End":
        this.setActive(visible[visible.length - 1], true);
        break;
      case "ArrowRight":
        if (node.expanded) this.setActive(node.children?.[0], true);
        else void this.expand(node);
        break;
      case "ArrowLeft":
        if (node.expanded) this.collapse(node);
        else this.setActive(node.parent, true);
        break;
      case "Enter":
      case " ":
        this.events.select(node.object.elementId);
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  }
}

function summarize(value: unknown): string {
  if (value !== null && typeof value === "object") return "{…}";
  const text = formatValue(value);
  return text.length > 16 ? `${text.slice(0, 15)}…` : text;
}
