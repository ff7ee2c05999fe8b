/**
 * Element ids of what a Sparkplug B host sees (docs/connectors.md, "Sparkplug B"). They are readable (the
 * topic path and the metric name as the edge node wrote them), reversible (`parseSparkplugId` gives the
 * parts back) and stable (nothing in them depends on a session: no alias, no bdSeq, no order).
 *
 *   group                 spBv1.0/<group>
 *   edge node             spBv1.0/<group>/<edge node>
 *   device                spBv1.0/<group>/<edge node>/<device>
 *   metric                <node or device id>#<metric name>          e.g. spBv1.0/G/E/D#Inputs/Temp
 *   folder                <node or device id>#<folder path>/         e.g. spBv1.0/G/E/D#Inputs/
 *   template member       <instance id>#<member name>                e.g. spBv1.0/G/E/D#Pump1#Speed
 *
 * Sparkplug forbids `/`, `+` and `#` in group, edge node and device ids, so the first `#` ends the topic
 * path. Inside names, `%`, `#`, control characters and white space at either end are percent-encoded, and
 * so is `/` in a name whose `/`-segments are not all non-empty (such a name makes no folders).
 * Object types use the same paths after `spBv1.0:<Kind>/`, so no type id can equal an object id.
 */

import { escapeIdPart } from "../mqtt/element-ids.js";

const ID_ROOT = "spBv1.0";

export interface MetricAddress {
  group: string;
  edgeNode: string;
  device?: string;
  /** The metric's name, then the member names down a template instance. */
  path: string[];
  folder: boolean;
}

/**
 * Percent-encodes what would make a name ambiguous or an invalid elementId: the same reserved characters
 * as MQTT ids (`escapeIdPart`), except that `keepSlashes` leaves a folder-like name's `/` as it is (a `%`
 * in the name is encoded, so no `%2F` left in the result stands for anything but a `/`).
 */
export function encodeName(name: string, keepSlashes: boolean): string {
  const escaped = escapeIdPart(name);
  return keepSlashes ? escaped.replaceAll("%2F", "/") : escaped;
}

/** True when every `/`-segment of the name is non-empty: only such names make folders. */
export function hasFolders(name: string): boolean {
  return name.includes("/") && name.split("/").every((s) => s.length > 0);
}

export class SparkplugIds {
  /** `prefix` (the connector's `idPrefix`) goes in front of every id, so two brokers' groups never meet. */
  constructor(private readonly prefix: string) {}

  group(group: string): string {
    return `${this.prefix}${ID_ROOT}/${encodeName(group, false)}`;
  }

  edgeNode(group: string, edgeNode: string): string {
    return `${this.group(group)}/${encodeName(edgeNode, false)}`;
  }

  device(group: string, edgeNode: string, device: string): string {
    return `${this.edgeNode(group, edgeNode)}/${encodeName(device, false)}`;
  }

  /** The node's or device's id. */
  owner(group: string, edgeNode: string, device?: string): string {
    return device === undefined ? this.edgeNode(group, edgeNode) : this.device(group, edgeNode, device);
  }

  /** A metric (or a member down a template instance) of `ownerId`. */
  metric(ownerId: string, path: readonly string[]): string {
    const [name, ...members] = path;
    let id = `${ownerId}#${encodeName(name, hasFolders(name))}`;
    for (const m of members) id += `#${encodeName(m, false)}`;
    return id;
  }

  /** A folder made by the first `depth` segments of a metric name. */
  folder(ownerId: string, segments: readonly string[]): string {
    return `${ownerId}#${segments.map((s) => encodeName(s, false)).join("/")}/`;
  }

  /** Types: `spBv1.0:<kind>/<path>`; built-in ones (`spBv1.0:Int32`, `spBv1.0:Folder`) have no path. */
  type(kind: string, path?: string): string {
    return path === undefined
      ? `${this.prefix}${ID_ROOT}:${kind}`
      : `${this.prefix}${ID_ROOT}:${kind}/${path}`;
  }

  edgeNodeType(group: string, edgeNode: string): string {
    return this.type(
      "EdgeNode",
      this.edgeNode(group, edgeNode).slice(this.prefix.length + ID_ROOT.length + 1),
    );
  }

  deviceType(group: string, edgeNode: string, device: string): string {
    return this.type(
      "Device",
      this.device(group, edgeNode, device).slice(this.prefix.length + ID_ROOT.length + 1),
    );
  }

  /** A Template definition of one edge node (definitions are scoped to the node that sent them). */
  templateType(group: string, edgeNode: string, definition: string): string {
    const node = this.edgeNode(group, edgeNode).slice(this.prefix.length + ID_ROOT.length + 1);
    return this.type("Template", `${node}#${encodeName(definition, false)}`);
  }

  /** The parts of a group, node, device, metric or folder id; null for anything else. */
  parse(id: string): { group: string; edgeNode?: string; device?: string; metric?: MetricAddress } | null {
    const head = `${this.prefix}${ID_ROOT}/`;
    if (!id.startsWith(head)) return null;
    const rest = id.slice(head.length);
    const hash = rest.indexOf("#");
    const topic = (hash < 0 ? rest : rest.slice(0, hash)).split("/").map(decodeURIComponentSafe);
    if (topic.length < 1 || topic.length > 3 || topic.some((s) => s === null || s === "")) return null;
    const [group, edgeNode, device] = topic as string[];
    if (hash < 0) return { group, edgeNode, device };
    if (edgeNode === undefined) return null;
    const tail = rest.slice(hash + 1);
    const folder = tail.endsWith("/");
    const parts = (folder ? tail.slice(0, -1) : tail).split("#").map(decodeURIComponentSafe);
    if (parts.some((p) => p === null || p === "")) return null;
    return { group, edgeNode, device, metric: { group, edgeNode, device, path: parts as string[], folder } };
  }
}

function decodeURIComponentSafe(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
