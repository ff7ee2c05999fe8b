import "./style.css";
import {
  ApiError,
  getResult,
  type Namespace,
  type ObjectType,
  onAuthFailure,
  storedKey,
  storeKey,
} from "./api.js";
import { ObjectDetail, typeDetail } from "./details.js";
import { byId, h, typeLink } from "./dom.js";
import { HealthStrip } from "./health.js";
import { LiveValues } from "./live.js";
import { ObjectTree } from "./tree.js";

const detailPane = byId("detail");
const banner = byId("banner");
const liveStatus = byId("live-status");
const keyDialog = byId<HTMLDialogElement>("key-dialog");
const keyInput = byId<HTMLInputElement>("key-input");

let detail: ObjectDetail | undefined;
let treeIds: string[] = [];

const live = new LiveValues({
  update(u) {
    tree.showValue(u.elementId, u);
    detail?.showValue(u.elementId, u);
  },
  status(state, reason) {
    liveStatus.textContent = {
      connecting: "connecting…",
      live: "● live",
      reconnecting: "reconnecting…",
      off: "live updates off",
    }[state];
    liveStatus.dataset.state = state;
    liveStatus.title = reason ?? "";
  },
});

const tree = new ObjectTree(byId("tree"), {
  select: (id) => {
    location.hash = `#o/${encodeURIComponent(id)}`;
  },
  visibleChanged(ids) {
    treeIds = ids;
    watchVisible();
  },
  error: showError,
});

function watchVisible(): void {
  live.watch([...treeIds, ...(detail?.watched ?? [])]);
}

function showError(err: unknown): void {
  // 401 and 403 have their own messages (the key dialog and the banner).
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
  showBanner(err instanceof Error ? err.message : String(err));
}

function showBanner(message: string, action?: HTMLElement): void {
  banner.replaceChildren(h("span", {}, message), ...(action ? [action] : []));
  banner.hidden = false;
}

function askForKey(message: string): void {
  byId("key-message").textContent = message;
  // Several calls fail at once without a key: only the first opens the dialog, the others leave what is typed.
  if (keyDialog.open) return;
  keyInput.value = "";
  keyDialog.showModal();
  keyInput.focus();
}

onAuthFailure((status, detailText) => {
  if (status === 401) {
    askForKey(
      storedKey() === null
        ? "This server requires an API key."
        : `The key was not accepted (${detailText}). Enter another key.`,
    );
    return;
  }
  const change = h("button", { type: "button", class: "plain" }, "Use another key");
  change.addEventListener("click", () => askForKey("Enter a key with more access."));
  showBanner(`Not allowed with this key: ${detailText}`, change);
});

byId("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = keyInput.value.trim();
  if (key === "") return;
  storeKey(key);
  keyDialog.close();
  // Everything on the page was read with the previous key (or none): start again with this one.
  location.reload();
});
byId("key-forget").addEventListener("click", () => {
  storeKey(null);
  keyDialog.close();
  location.reload();
});
byId("key-button").addEventListener("click", () =>
  askForKey(
    storedKey() === null
      ? "No key is set for this tab."
      : "A key is set for this tab. Enter another one, or forget it.",
  ),
);

async function route(): Promise<void> {
  const [kind, rawId] = location.hash.slice(1).split("/", 2);
  const id = rawId === undefined ? undefined : decodeURIComponent(rawId);
  detail?.destroy();
  detail = undefined;
  tree.markSelected(kind === "o" ? id : undefined);
  if (id === undefined) return;
  detailPane.replaceChildren(h("p", { class: "hint" }, "Loading…"));
  try {
    if (kind === "o") {
      const view = new ObjectDetail(id);
      detail = view;
      await view.load();
      if (detail !== view) {
        // Another selection came first.
        view.destroy();
        return;
      }
      detailPane.replaceChildren(view.element);
      watchVisible();
    } else if (kind === "t") {
      detailPane.replaceChildren(await typeDetail(id));
    }
  } catch (err) {
    detailPane.replaceChildren(h("p", { class: "error" }, `Could not show ${id}: ${(err as Error).message}`));
    showError(err);
  }
}

async function loadTypes(): Promise<void> {
  const [namespaces, types] = await Promise.all([
    getResult<Namespace[]>("/v1/namespaces"),
    getResult<ObjectType[]>("/v1/objecttypes"),
  ]);
  const container = byId("types");
  container.replaceChildren(
    ...namespaces.map((ns) => {
      const own = types.filter((t) => t.namespaceUri === ns.uri);
      return h(
        "details",
        {},
        h("summary", { title: ns.uri }, `${ns.displayName} (${own.length})`),
        h(
          "ul",
          {},
          own.map((t) => h("li", {}, typeLink(t.elementId, t.displayName))),
        ),
      );
    }),
  );
}

async function main(): Promise<void> {
  new HealthStrip(byId("health")).start();
  try {
    await Promise.all([tree.load(), loadTypes()]);
  } catch (err) {
    showError(err);
    return;
  }
  live.start();
  window.addEventListener("hashchange", () => void route());
  await route();
}

void main();
