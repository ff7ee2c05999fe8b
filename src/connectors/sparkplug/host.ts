import {
  builtInRelationshipTypes,
  HAS_COMPONENT,
  I3X_NAMESPACE,
  type JsonSchema,
  type Quality,
} from "../../domain/model.js";
import type { ModelDocument, ModelObject, ModelObjectType, ModelRelationship } from "../../model/format.js";
import { MAX_ELEMENT_ID_LENGTH } from "../../model/validate.js";
import type { SourcePoint } from "../connector.js";
import {
  decodeSparkplug,
  PayloadError,
  type SparkplugMetric,
  type SparkplugPayload,
  type TemplateValue,
} from "./codec.js";
import { DATATYPE_NAMES, datatypeSchema, TEMPLATE } from "./datatypes.js";
import { hasFolders, type SparkplugIds } from "./ids.js";

/**
 * The Sparkplug B host application's state machine, free of I/O: it takes each message (topic, payload,
 * receive time) and says what follows from it — model pieces, points, rebirth requests, counts. Rules
 * (Sparkplug 3.0): births define the model and one alias table per edge node session; `seq` runs 0–255
 * and wraps, a gap is waited out for the reorder timeout before a rebirth is requested; an NDEATH counts
 * only when its `bdSeq` matches the current NBIRTH. The connector owns the broker, the clock and the queue.
 */

export const SPARKPLUG_NAMESPACE = "https://sparkplug.eclipse.org/spBv1.0?projection=i3xd";

export type RebirthReason = "data_before_birth" | "unknown_alias" | "sequence_gap";

export interface HostOptions {
  ids: SparkplugIds;
  /** How long a missing `seq` is waited for before the node is asked to rebirth. */
  reorderTimeoutMs: number;
  /** What a node's or device's metrics show after its death certificate. */
  onDeath: "bad" | "uncertain";
  /**
   * Metrics a later birth no longer lists are removed from the model (`HostEffects.removed`), with the
   * folders they leave empty; otherwise they stay, `Bad`.
   */
  removeDropped: boolean;
  /** Bounds that keep one misbehaving edge node from taking the process's memory. */
  maxEdgeNodes: number;
  maxMetricsPerEdgeNode: number;
  /** Out-of-order messages held per node while a gap is waited out, by count and by bytes. */
  maxReorderMessages: number;
  maxReorderBytes: number;
}

export interface HostEffects {
  points: SourcePoint[];
  model?: Partial<ModelDocument>;
  /** Objects to remove once `model` is applied: metrics (and their folders) a birth no longer lists. */
  removed: string[];
  /** The removed metrics as `Bad`: what is stored instead when the removal fails. */
  removedAsBad: SourcePoint[];
  rebirths: { group: string; edgeNode: string; reason: RebirthReason }[];
  /** Why the message was not usable at all (counted `invalid`). */
  invalid?: string;
  /** The message, or part of it, fit nothing known (counted `unmatched`). */
  unmatched: boolean;
  sequenceGaps: number;
  /** The message was not Sparkplug data for a host (commands, STATE): counted as received only. */
  ignored: boolean;
  /** Metrics of a birth left out because their element id would be too long (the rest is applied). */
  skipped: string[];
}

/** Where a write goes, from the metric's current session. */
export interface WriteTarget {
  topic: string;
  /** The written metric's datatype: a template member's own when `members` is given. */
  datatype: number;
  /** Alias and name of the metric the command names (the template instance for a member). */
  alias?: string;
  name: string;
  /** For a member of a template instance: the instance's template, then each member down to it. */
  templateRef?: string;
  members?: { name: string; templateRef?: string }[];
}

/** `system.source` of a metric object: what a write names. */
export interface MetricSource {
  group: string;
  edgeNode: string;
  device?: string;
  metric: string;
  /** Member names down a template instance. */
  members?: string[];
}

interface MetricState {
  elementId: string;
  name: string;
  datatype: number;
  alias?: string;
  /** Template instance members, by name, and the definition the instance refers to. */
  members?: Map<string, MetricState>;
  templateRef?: string;
  /** Last current value, held as `Uncertain` after a death when so configured. */
  last: unknown;
}

interface Owner {
  elementId: string;
  device?: string;
  online: boolean;
  metrics: Map<string, MetricState>;
}

interface Stashed {
  seq: number;
  kind: string;
  device?: string;
  payload: SparkplugPayload;
  bytes: number;
}

interface EdgeNode {
  group: string;
  edgeNode: string;
  elementId: string;
  online: boolean;
  bdSeq?: string;
  expectedSeq: number;
  node: Owner;
  devices: Map<string, Owner>;
  aliases: Map<string, { owner: Owner; metric: MetricState }>;
  templates: Map<string, TemplateValue>;
  stash: Stashed[];
  stashBytes: number;
  gapDeadline?: number;
}

const MESSAGE_TYPES = new Set(["NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA", "NCMD", "DCMD"]);

function qualityOf(metric: SparkplugMetric): { value: unknown; quality: Quality } {
  const q = metric.properties.Quality;
  if (q === 0) return { value: null, quality: "Bad" };
  if (metric.isNull) return { value: null, quality: "GoodNoData" };
  if (metric.unrepresentable || metric.value === null) return { value: null, quality: "Bad" };
  if (q === 500 || (typeof q === "number" && q !== 192)) return { value: metric.value, quality: "Uncertain" };
  return { value: metric.value, quality: "Good" };
}

function descriptionOf(properties: Record<string, unknown>): string | undefined {
  const d = properties.description ?? properties.Documentation ?? properties.Tooltip;
  return typeof d === "string" && d.length > 0 ? d : undefined;
}

function withoutQuality(properties: Record<string, unknown>): Record<string, unknown> | undefined {
  const { Quality: _q, ...rest } = properties;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** The metric's JSON Schema in its node's or template's type: its datatype's plus what Properties say. */
function metricSchema(metric: SparkplugMetric, templateType?: string): JsonSchema {
  const schema: JsonSchema =
    metric.datatype === TEMPLATE
      ? { type: "object", description: `Sparkplug Template${templateType ? ` ${templateType}` : ""}` }
      : { ...datatypeSchema(metric.datatype) };
  const description = descriptionOf(metric.properties);
  if (description) schema.description = description;
  const unit = metric.properties.engUnit ?? metric.properties.EngUnit ?? metric.properties.engUnits;
  if (typeof unit === "string") schema["x-engUnit"] = unit;
  for (const key of ["engLow", "engHigh"] as const) {
    if (typeof metric.properties[key] === "number") schema[`x-${key}`] = metric.properties[key];
  }
  return schema;
}

/** Puts a metric's schema into a nested `properties` tree along its folders. */
function placeSchema(root: JsonSchema, segments: readonly string[], schema: JsonSchema): void {
  const propertiesOf = (s: JsonSchema): Record<string, JsonSchema> => {
    if (s.properties === undefined) s.properties = {};
    return s.properties as Record<string, JsonSchema>;
  };
  let at = root;
  for (const folder of segments.slice(0, -1)) {
    const props = propertiesOf(at);
    if (props[folder] === undefined) props[folder] = { type: "object" };
    at = props[folder];
  }
  propertiesOf(at)[segments[segments.length - 1]] = schema;
}

/** The longest element id a metric makes: its own, or one of its template members' down the tree. */
function longestId(ids: SparkplugIds, elementId: string, metric: SparkplugMetric): number {
  const template = metric.datatype === TEMPLATE ? (metric.value as TemplateValue | null) : null;
  let longest = elementId.length;
  for (const member of template?.metrics ?? []) {
    if (member.name === undefined) continue;
    // The member's id as the objects get it (a folder-like name keeps its slashes).
    longest = Math.max(longest, longestId(ids, ids.metric(elementId, [member.name]), member));
  }
  return longest;
}

function emptyEffects(): HostEffects {
  return {
    points: [],
    removed: [],
    removedAsBad: [],
    rebirths: [],
    unmatched: false,
    sequenceGaps: 0,
    ignored: false,
    skipped: [],
  };
}

/** A model change being built from one birth. */
class ModelDraft {
  readonly types = new Map<string, ModelObjectType>();
  readonly objects = new Map<string, ModelObject>();
  readonly relationships: ModelRelationship[] = [];
  private readonly edges = new Set<string>();
  /** Set on the first change of a run: it carries the namespaces and relationship types too. */
  withVocabulary = false;

  /** A `HasComponent` edge, once (a birth may name a metric twice). */
  component(sourceId: string, targetId: string): void {
    const key = `${sourceId}\n${targetId}`;
    if (this.edges.has(key)) return;
    this.edges.add(key);
    this.relationships.push({ sourceId, relationshipType: HAS_COMPONENT, targetId });
  }

  toChange(): Partial<ModelDocument> | undefined {
    if (this.types.size === 0 && this.objects.size === 0) return undefined;
    return {
      ...(this.withVocabulary ? SPARKPLUG_VOCABULARY : {}),
      objectTypes: [...this.types.values()],
      objects: [...this.objects.values()],
      relationships: this.relationships,
    };
  }
}

export class SparkplugHost {
  private readonly nodes = new Map<string, EdgeNode>();
  /** Types and vocabulary already handed to the model path in this run. */
  private readonly announced = new Set<string>();
  private vocabularySent = false;

  constructor(private readonly options: HostOptions) {}

  /** Edge nodes known to this host, by state. */
  edgeNodeCounts(): { online: number; offline: number } {
    let online = 0;
    for (const n of this.nodes.values()) if (n.online) online++;
    return { online, offline: this.nodes.size - online };
  }

  /** Every edge node this host has seen a birth from. */
  edgeNodes(): { group: string; edgeNode: string }[] {
    return [...this.nodes.values()].map((n) => ({ group: n.group, edgeNode: n.edgeNode }));
  }

  /** When the earliest reorder wait runs out (ms), if any is running. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const n of this.nodes.values())
      if (n.gapDeadline !== undefined && (next === undefined || n.gapDeadline < next)) next = n.gapDeadline;
    return next;
  }

  /** One message from the broker. `nowMs` is the receive time. */
  handle(topic: string, payload: Uint8Array, nowMs: number): HostEffects {
    const fx = emptyEffects();
    const parts = topic.split("/");
    if (parts[0] !== "spBv1.0") {
      fx.invalid = "not a Sparkplug B topic";
      return fx;
    }
    if (parts[1] === "STATE") {
      fx.ignored = true;
      return fx;
    }
    const [, group, kind, edgeNode, device] = parts;
    if (parts.length < 4 || parts.length > 5 || !MESSAGE_TYPES.has(kind) || !group || !edgeNode) {
      fx.invalid = "not a Sparkplug B topic";
      return fx;
    }
    if (kind === "NCMD" || kind === "DCMD") {
      fx.ignored = true;
      return fx;
    }
    const isDeviceKind = kind.startsWith("D");
    if (isDeviceKind !== (device !== undefined && device !== "")) {
      fx.invalid = `${kind} on a topic ${isDeviceKind ? "without" : "with"} a device id`;
      return fx;
    }
    let decoded: SparkplugPayload;
    try {
      decoded = decodeSparkplug(payload);
    } catch (err) {
      if (!(err instanceof PayloadError)) throw err;
      fx.invalid = err.message;
      return fx;
    }
    if (this.options.ids.owner(group, edgeNode, device || undefined).length > MAX_ELEMENT_ID_LENGTH) {
      fx.invalid = `element id of ${device ? "device" : "edge node"} longer than ${MAX_ELEMENT_ID_LENGTH} characters`;
      return fx;
    }
    const key = `${group}/${edgeNode}`;
    let node = this.nodes.get(key);
    if (kind === "NBIRTH") {
      if (!node) {
        if (this.nodes.size >= this.options.maxEdgeNodes) {
          fx.invalid = `more than ${this.options.maxEdgeNodes} edge nodes`;
          return fx;
        }
        node = this.newNode(group, edgeNode);
        this.nodes.set(key, node);
      }
      this.nodeBirth(node, decoded, nowMs, fx);
      return fx;
    }
    if (kind === "NDEATH") {
      if (node) this.nodeDeath(node, decoded, nowMs, fx);
      else fx.unmatched = true;
      return fx;
    }
    if (!node?.online) {
      fx.unmatched = true;
      fx.rebirths.push({ group, edgeNode, reason: "data_before_birth" });
      return fx;
    }
    this.sequenced(
      node,
      { seq: decoded.seq ?? -1, kind, device, payload: decoded, bytes: payload.byteLength },
      nowMs,
      fx,
    );
    return fx;
  }

  /** Ends reorder waits that ran out by `nowMs`: the gap is counted, a rebirth asked for, the rest applied. */
  expire(nowMs: number): HostEffects {
    const fx = emptyEffects();
    for (const node of this.nodes.values()) {
      if (node.gapDeadline !== undefined && node.gapDeadline <= nowMs) this.giveUpGap(node, nowMs, fx);
    }
    return fx;
  }

  /**
   * Where a write to a metric goes now. An Error says why it cannot go: unknown or offline node or
   * device, unknown metric (status in `status`).
   */
  writeTarget(source: unknown): WriteTarget | { status: number; detail: string } {
    const s = source as Partial<MetricSource> | null;
    if (!s || typeof s.group !== "string" || typeof s.edgeNode !== "string" || typeof s.metric !== "string")
      return { status: 400, detail: "not a Sparkplug metric" };
    const node = this.nodes.get(`${s.group}/${s.edgeNode}`);
    if (!node?.online) return { status: 503, detail: `edge node ${s.group}/${s.edgeNode} is offline` };
    const owner = s.device === undefined ? node.node : node.devices.get(s.device);
    if (!owner?.online) return { status: 503, detail: `device ${s.device} is offline` };
    const metric = owner.metrics.get(s.metric);
    if (!metric) return { status: 404, detail: `metric ${s.metric} is not in the current birth certificate` };
    const topic =
      s.device === undefined
        ? `spBv1.0/${s.group}/NCMD/${s.edgeNode}`
        : `spBv1.0/${s.group}/DCMD/${s.edgeNode}/${s.device}`;
    const target: WriteTarget = { topic, datatype: metric.datatype, alias: metric.alias, name: metric.name };
    if (!Array.isArray(s.members) || s.members.length === 0) return target;
    // A member is written through its instance: a Template value holding just that member.
    let at = metric;
    const members: { name: string; templateRef?: string }[] = [];
    for (const name of s.members) {
      const next = typeof name === "string" ? at.members?.get(name) : undefined;
      if (!next) return { status: 404, detail: `member ${name} is not in the current birth certificate` };
      members.push({ name, templateRef: next.templateRef });
      at = next;
    }
    return { ...target, datatype: at.datatype, templateRef: metric.templateRef, members };
  }

  private newNode(group: string, edgeNode: string): EdgeNode {
    const elementId = this.options.ids.edgeNode(group, edgeNode);
    return {
      group,
      edgeNode,
      elementId,
      online: false,
      expectedSeq: 0,
      node: { elementId, online: false, metrics: new Map() },
      devices: new Map(),
      aliases: new Map(),
      templates: new Map(),
      stash: [],
      stashBytes: 0,
    };
  }

  // ---- sequence numbers ----

  private sequenced(node: EdgeNode, msg: Stashed, nowMs: number, fx: HostEffects): void {
    if (msg.seq < 0 || msg.seq > 255) {
      this.apply(node, msg, nowMs, fx);
      return;
    }
    if (node.gapDeadline === undefined && msg.seq === node.expectedSeq) {
      node.expectedSeq = (msg.seq + 1) % 256;
      this.apply(node, msg, nowMs, fx);
      return;
    }
    node.stash.push(msg);
    node.stashBytes += msg.bytes;
    if (node.gapDeadline === undefined) node.gapDeadline = nowMs + this.options.reorderTimeoutMs;
    this.drainStash(node, nowMs, fx);
    if (
      node.gapDeadline !== undefined &&
      (node.gapDeadline <= nowMs ||
        node.stash.length > this.options.maxReorderMessages ||
        node.stashBytes > this.options.maxReorderBytes)
    )
      this.giveUpGap(node, nowMs, fx);
  }

  /** Applies stashed messages as long as the next expected one is among them. */
  private drainStash(node: EdgeNode, nowMs: number, fx: HostEffects): void {
    for (;;) {
      const i = node.stash.findIndex((m) => m.seq === node.expectedSeq);
      if (i < 0) break;
      const [msg] = node.stash.splice(i, 1);
      node.stashBytes -= msg.bytes;
      node.expectedSeq = (msg.seq + 1) % 256;
      this.apply(node, msg, nowMs, fx);
    }
    if (node.stash.length === 0) node.gapDeadline = undefined;
  }

  private giveUpGap(node: EdgeNode, nowMs: number, fx: HostEffects): void {
    fx.sequenceGaps++;
    fx.rebirths.push({ group: node.group, edgeNode: node.edgeNode, reason: "sequence_gap" });
    // What arrived is still valid data by alias: apply it in sequence order from the expected number on.
    const distance = (seq: number) => (seq - node.expectedSeq + 256) % 256;
    const held = node.stash.sort((a, b) => distance(a.seq) - distance(b.seq));
    node.stash = [];
    node.stashBytes = 0;
    node.gapDeadline = undefined;
    for (const msg of held) {
      node.expectedSeq = (msg.seq + 1) % 256;
      if (node.online) this.apply(node, msg, nowMs, fx);
    }
  }

  private apply(node: EdgeNode, msg: Stashed, nowMs: number, fx: HostEffects): void {
    switch (msg.kind) {
      case "NDATA":
        this.data(node, node.node, msg.payload, nowMs, fx);
        return;
      case "DBIRTH":
        this.deviceBirth(node, msg.device as string, msg.payload, nowMs, fx);
        return;
      case "DDATA": {
        const device = node.devices.get(msg.device as string);
        if (!device?.online) {
          fx.unmatched = true;
          fx.rebirths.push({ group: node.group, edgeNode: node.edgeNode, reason: "data_before_birth" });
          return;
        }
        this.data(node, device, msg.payload, nowMs, fx);
        return;
      }
      case "DDEATH": {
        const device = node.devices.get(msg.device as string);
        if (!device) {
          fx.unmatched = true;
          return;
        }
        const tsUs = (msg.payload.timestampMs ?? nowMs) * 1000;
        if (device.online) this.markDead(device, tsUs, fx.points);
        device.online = false;
        return;
      }
    }
  }

  // ---- births and deaths ----

  private nodeBirth(node: EdgeNode, payload: SparkplugPayload, nowMs: number, fx: HostEffects): void {
    const bdSeq = payload.metrics.find((m) => m.name === "bdSeq");
    const definitions = new Map<string, TemplateValue>();
    for (const m of payload.metrics) {
      const t = m.value as TemplateValue | null;
      if (m.datatype === TEMPLATE && m.name !== undefined && t?.isDefinition) definitions.set(m.name, t);
    }
    const count = payload.metrics.length;
    if (count > this.options.maxMetricsPerEdgeNode) {
      fx.invalid = `NBIRTH with ${count} metrics (at most ${this.options.maxMetricsPerEdgeNode})`;
      return;
    }
    const ids = this.options.ids;
    const draft = new ModelDraft();
    this.vocabulary(draft);
    const groupId = ids.group(node.group);
    draft.objects.set(groupId, {
      elementId: groupId,
      displayName: node.group,
      typeElementId: this.builtinType(draft, "Group", { type: "object", description: "Sparkplug group" }),
      parentId: null,
      system: { source: { group: node.group } },
    });
    // A new session: aliases, devices' births and the sequence all start again.
    node.online = true;
    node.bdSeq = bdSeq ? String(bdSeq.value) : undefined;
    node.expectedSeq = ((payload.seq ?? 0) + 1) % 256;
    node.stash = [];
    node.stashBytes = 0;
    node.gapDeadline = undefined;
    node.aliases.clear();
    node.templates = definitions;
    for (const device of node.devices.values()) device.online = false;
    for (const [name, def] of definitions) {
      const typeId = ids.templateType(node.group, node.edgeNode, name);
      this.templateType(draft, name, def, typeId);
    }
    const typeId = ids.edgeNodeType(node.group, node.edgeNode);
    this.owner(
      draft,
      node,
      node.node,
      groupId,
      node.edgeNode,
      typeId,
      payload.metrics.filter(
        (m) => !(m.datatype === TEMPLATE && (m.value as TemplateValue | null)?.isDefinition),
      ),
      (payload.timestampMs ?? nowMs) * 1000,
      fx,
      "Sparkplug edge node",
    );
    node.node.online = true;
    fx.model = draft.toChange();
  }

  private deviceBirth(
    node: EdgeNode,
    device: string,
    payload: SparkplugPayload,
    nowMs: number,
    fx: HostEffects,
  ): void {
    // Each device counts as one besides its metrics, so devices without metrics are bounded too.
    let others = node.node.metrics.size;
    for (const [id, d] of node.devices) if (id !== device) others += 1 + d.metrics.size;
    if (others + 1 + payload.metrics.length > this.options.maxMetricsPerEdgeNode) {
      fx.invalid = `DBIRTH beyond ${this.options.maxMetricsPerEdgeNode} metrics for its edge node`;
      return;
    }
    const ids = this.options.ids;
    let owner = node.devices.get(device);
    if (!owner) {
      owner = {
        elementId: ids.device(node.group, node.edgeNode, device),
        device,
        online: false,
        metrics: new Map(),
      };
      node.devices.set(device, owner);
    }
    for (const [alias, entry] of node.aliases) if (entry.owner === owner) node.aliases.delete(alias);
    const draft = new ModelDraft();
    this.vocabulary(draft);
    this.owner(
      draft,
      node,
      owner,
      node.elementId,
      device,
      ids.deviceType(node.group, node.edgeNode, device),
      payload.metrics,
      (payload.timestampMs ?? nowMs) * 1000,
      fx,
      "Sparkplug device",
    );
    owner.online = true;
    fx.model = draft.toChange();
  }

  /**
   * The node or device object, its generated type and every metric below it, with the birth values as
   * points. Metrics of the previous birth that this one lacks turn `Bad` (their objects stay), or, with
   * `removeDropped`, are removed with the folders and template members that are gone with them.
   */
  private owner(
    draft: ModelDraft,
    node: EdgeNode,
    owner: Owner,
    parentId: string,
    displayName: string,
    typeId: string,
    metrics: readonly SparkplugMetric[],
    birthUs: number,
    fx: HostEffects,
    typeDescription: string,
  ): void {
    const ids = this.options.ids;
    const schema: JsonSchema = { type: "object", description: typeDescription };
    const previous = owner.metrics;
    owner.metrics = new Map();
    draft.objects.set(owner.elementId, {
      elementId: owner.elementId,
      displayName,
      typeElementId: typeId,
      parentId,
      system: {
        source: {
          group: node.group,
          edgeNode: node.edgeNode,
          ...(owner.device ? { device: owner.device } : {}),
        },
      },
    });
    for (const metric of metrics) {
      if (metric.name === undefined || metric.name === "") continue;
      const name = metric.name;
      const elementId = ids.metric(owner.elementId, [name]);
      if (longestId(ids, elementId, metric) > MAX_ELEMENT_ID_LENGTH) {
        fx.skipped.push(name);
        continue;
      }
      const folders = hasFolders(name) ? name.split("/") : [name];
      const source: MetricSource = {
        group: node.group,
        edgeNode: node.edgeNode,
        ...(owner.device ? { device: owner.device } : {}),
        metric: name,
      };
      let parent = owner.elementId;
      for (let depth = 1; depth < folders.length; depth++) {
        const folderId = ids.folder(owner.elementId, folders.slice(0, depth));
        if (!draft.objects.has(folderId)) {
          draft.objects.set(folderId, {
            elementId: folderId,
            displayName: folders[depth - 1],
            typeElementId: this.builtinType(draft, "Folder", {
              type: "object",
              description: "A folder of Sparkplug metrics (a `/` in their names)",
            }),
            parentId: parent,
          });
          draft.component(parent, folderId);
        }
        parent = folderId;
      }
      const template = metric.datatype === TEMPLATE ? (metric.value as TemplateValue | null) : null;
      placeSchema(schema, folders, metricSchema(metric, template?.templateRef));
      const state = this.metricObject(
        draft,
        node,
        metric,
        elementId,
        folders[folders.length - 1],
        parent,
        source,
        [],
        birthUs,
        fx,
      );
      owner.metrics.set(name, state);
      if (metric.alias !== undefined) {
        state.alias = metric.alias;
        node.aliases.set(metric.alias, { owner, metric: state });
      }
    }
    if (this.options.removeDropped) {
      // A birth earlier in the same batch of messages may have dropped what this one brings back.
      if (fx.removed.length > 0) {
        fx.removed = fx.removed.filter((id) => !draft.objects.has(id));
        fx.removedAsBad = fx.removedAsBad.filter((p) => !draft.objects.has(p.elementId));
      }
      for (const id of this.metricTreeIds(owner.elementId, previous))
        if (!draft.objects.has(id)) fx.removed.push(id);
    }
    for (const [name, gone] of previous) {
      if (owner.metrics.has(name)) continue;
      this.markMetric(gone, birthUs, "bad", this.options.removeDropped ? fx.removedAsBad : fx.points);
    }
    draft.types.set(typeId, {
      elementId: typeId,
      displayName: `${displayName} (${typeDescription})`,
      namespaceUri: SPARKPLUG_NAMESPACE,
      sourceTypeId: typeId,
      schema,
    });
  }

  /** Ids of the objects a birth made for these metrics: each metric, its template members and folders. */
  private metricTreeIds(ownerId: string, metrics: ReadonlyMap<string, MetricState>): Set<string> {
    const ids = new Set<string>();
    const add = (state: MetricState) => {
      ids.add(state.elementId);
      for (const member of state.members?.values() ?? []) add(member);
    };
    for (const [name, state] of metrics) {
      add(state);
      if (!hasFolders(name)) continue;
      const segments = name.split("/");
      for (let depth = 1; depth < segments.length; depth++)
        ids.add(this.options.ids.folder(ownerId, segments.slice(0, depth)));
    }
    return ids;
  }

  /** One metric object (a template instance with its members), its HasComponent edge and its birth value. */
  private metricObject(
    draft: ModelDraft,
    node: EdgeNode,
    metric: SparkplugMetric,
    elementId: string,
    displayName: string,
    parentId: string,
    source: MetricSource,
    members: string[],
    birthUs: number,
    fx: HostEffects,
  ): MetricState {
    const template = metric.datatype === TEMPLATE ? (metric.value as TemplateValue | null) : null;
    const state: MetricState = { elementId, name: metric.name ?? "", datatype: metric.datatype, last: null };
    let typeElementId: string;
    if (metric.datatype === TEMPLATE) {
      const ref = template?.templateRef;
      const def = ref !== undefined ? node.templates.get(ref) : undefined;
      typeElementId =
        ref !== undefined && def
          ? this.options.ids.templateType(node.group, node.edgeNode, ref)
          : this.builtinType(draft, "TemplateInstance", {
              type: "object",
              description: "A Sparkplug Template instance whose definition this host has not seen",
            });
      state.members = new Map();
      state.templateRef = ref;
      for (const member of template?.metrics ?? []) {
        if (member.name === undefined || member.name === "") continue;
        const path = [...members, member.name];
        const memberId = this.options.ids.metric(elementId, [member.name]);
        const child = this.metricObject(
          draft,
          node,
          member,
          memberId,
          member.name,
          elementId,
          { ...source, members: path },
          path,
          birthUs,
          fx,
        );
        state.members.set(member.name, child);
      }
    } else {
      typeElementId = this.datatypeType(draft, metric.datatype);
      this.point(state, metric, birthUs, fx);
    }
    const system: Record<string, unknown> = {
      source: members.length > 0 ? { ...source, members } : source,
      sparkplug: {
        datatype: DATATYPE_NAMES[metric.datatype] ?? metric.datatype,
        ...(template?.parameters && Object.keys(template.parameters).length > 0
          ? { parameters: template.parameters }
          : {}),
        ...(withoutQuality(metric.properties) ? { properties: withoutQuality(metric.properties) } : {}),
      },
    };
    const description = descriptionOf(metric.properties);
    draft.objects.set(elementId, {
      elementId,
      displayName,
      typeElementId,
      parentId,
      ...(description ? { description } : {}),
      system,
    });
    draft.component(parentId, elementId);
    return state;
  }

  private templateType(draft: ModelDraft, name: string, def: TemplateValue, typeId: string): void {
    const schema: JsonSchema = { type: "object", description: `Sparkplug Template ${name}` };
    const props: Record<string, JsonSchema> = {};
    for (const member of def.metrics) {
      if (member.name === undefined) continue;
      const ref =
        member.datatype === TEMPLATE ? (member.value as TemplateValue | null)?.templateRef : undefined;
      props[member.name] = metricSchema(member, ref);
    }
    schema.properties = props;
    if (Object.keys(def.parameters).length > 0) schema["x-sparkplugParameters"] = def.parameters;
    draft.types.set(typeId, {
      elementId: typeId,
      displayName: name,
      namespaceUri: SPARKPLUG_NAMESPACE,
      sourceTypeId: name,
      ...(def.version ? { version: def.version } : {}),
      schema,
    });
  }

  private nodeDeath(node: EdgeNode, payload: SparkplugPayload, nowMs: number, fx: HostEffects): void {
    const bdSeq = payload.metrics.find((m) => m.name === "bdSeq");
    // A stale NDEATH (the Will of an earlier connection) must not take down the current session.
    if (!node.online || bdSeq === undefined || String(bdSeq.value) !== node.bdSeq) {
      fx.ignored = true;
      return;
    }
    const tsUs = nowMs * 1000;
    node.online = false;
    node.node.online = false;
    node.stash = [];
    node.stashBytes = 0;
    node.gapDeadline = undefined;
    this.markDead(node.node, tsUs, fx.points);
    for (const device of node.devices.values()) {
      if (device.online) this.markDead(device, tsUs, fx.points);
      device.online = false;
    }
  }

  private markDead(owner: Owner, tsUs: number, points: SourcePoint[]): void {
    for (const metric of owner.metrics.values()) this.markMetric(metric, tsUs, this.options.onDeath, points);
  }

  private markMetric(
    metric: MetricState,
    tsUs: number,
    how: "bad" | "uncertain",
    points: SourcePoint[],
  ): void {
    if (metric.members) {
      for (const m of metric.members.values()) this.markMetric(m, tsUs, how, points);
      return;
    }
    if (how === "uncertain" && metric.last !== null)
      points.push({ elementId: metric.elementId, value: metric.last, quality: "Uncertain", tsUs });
    else points.push({ elementId: metric.elementId, value: null, quality: "Bad", tsUs });
  }

  // ---- data ----

  private data(
    node: EdgeNode,
    owner: Owner,
    payload: SparkplugPayload,
    nowMs: number,
    fx: HostEffects,
  ): void {
    const defaultUs = (payload.timestampMs ?? nowMs) * 1000;
    let unknown = false;
    for (const metric of payload.metrics) {
      let state: MetricState | undefined;
      if (metric.alias !== undefined) {
        const entry = node.aliases.get(metric.alias);
        state = entry && entry.owner === owner ? entry.metric : undefined;
      } else if (metric.name !== undefined) {
        state = owner.metrics.get(metric.name);
      }
      if (!state) {
        unknown = true;
        continue;
      }
      this.dataPoint(state, metric, defaultUs, fx);
    }
    if (unknown) {
      fx.unmatched = true;
      fx.rebirths.push({ group: node.group, edgeNode: node.edgeNode, reason: "unknown_alias" });
    }
  }

  private dataPoint(state: MetricState, metric: SparkplugMetric, defaultUs: number, fx: HostEffects): void {
    if (state.members) {
      const template = metric.datatype === TEMPLATE ? (metric.value as TemplateValue | null) : null;
      const us = metric.timestampMs !== undefined ? metric.timestampMs * 1000 : defaultUs;
      for (const member of template?.metrics ?? []) {
        const child = member.name !== undefined ? state.members.get(member.name) : undefined;
        if (child)
          this.dataPoint(
            child,
            { ...member, isHistorical: member.isHistorical || metric.isHistorical },
            us,
            fx,
          );
      }
      return;
    }
    this.point(state, metric, defaultUs, fx);
  }

  private point(state: MetricState, metric: SparkplugMetric, defaultUs: number, fx: HostEffects): void {
    const { value, quality } = qualityOf(metric);
    const tsUs = metric.timestampMs !== undefined ? metric.timestampMs * 1000 : defaultUs;
    if (metric.isHistorical) {
      fx.points.push({ elementId: state.elementId, value, quality, tsUs, historical: true });
      return;
    }
    if (value !== null) state.last = value;
    fx.points.push({ elementId: state.elementId, value, quality, tsUs });
  }

  // ---- vocabulary ----

  /** Namespaces and relationship types the objects refer to, handed over once per run. */
  private vocabulary(draft: ModelDraft): void {
    if (this.vocabularySent) return;
    this.vocabularySent = true;
    draft.withVocabulary = true;
  }

  /** A model change did not reach the store: the next birth hands over the vocabulary and types again. */
  forgetAnnounced(): void {
    this.vocabularySent = false;
    this.announced.clear();
  }

  private builtinType(draft: ModelDraft, kind: string, schema: JsonSchema): string {
    const id = this.options.ids.type(kind);
    if (!this.announced.has(id)) {
      this.announced.add(id);
      draft.types.set(id, {
        elementId: id,
        displayName: kind,
        namespaceUri: SPARKPLUG_NAMESPACE,
        sourceTypeId: kind,
        schema,
      });
    }
    return id;
  }

  private datatypeType(draft: ModelDraft, datatype: number): string {
    const name = DATATYPE_NAMES[datatype] ?? "Unknown";
    return this.builtinType(draft, name, datatypeSchema(datatype));
  }
}

/** The namespaces and relationship types every Sparkplug model change may refer to. */
const SPARKPLUG_VOCABULARY: Pick<ModelDocument, "namespaces" | "relationshipTypes"> = {
  namespaces: [
    { uri: I3X_NAMESPACE, displayName: "i3X" },
    { uri: SPARKPLUG_NAMESPACE, displayName: "Sparkplug B" },
  ],
  relationshipTypes: builtInRelationshipTypes(),
};
