import {
  AttributeIds,
  BrowseDirection,
  browseAll,
  type ClientSession,
  DataType,
  findBasicDataType,
  type LocalizedText,
  NodeClass,
  NodeClassMask,
  type NodeId,
  type ReferenceDescription,
  resolveNodeId,
} from "node-opcua-client";
import { nodeKey, STANDARD_NAMESPACE } from "./ids.js";

/**
 * Breadth-first browse of an OPC UA address space into what the connector maps: objects, variables, the
 * ObjectTypes and DataTypes they use, and the references between them. Everything is keyed by node key
 * (`nsu=<uri>;<identifier>`), never by namespace index. Requests go out in batches of `batchSize` nodes.
 */

export interface BrowsedNode {
  key: string;
  nodeId: NodeId;
  nodeClass: "Object" | "Variable";
  browseName: string;
  displayName: string;
  description?: string;
  /** Key of the mapped node above it, or null at the top. */
  parentKey: string | null;
  /** The reference from the parent was HasComponent or HasProperty (a composition member). */
  component: boolean;
  /** Objects: key of the ObjectType. Variables: key of the DataType. */
  typeKey: string;
}

export interface BrowsedVariable extends BrowsedNode {
  nodeClass: "Variable";
  builtIn: DataType;
  isArray: boolean;
  writable: boolean;
  historizing: boolean;
  /** EngineeringUnits, EURange and the like, read from the variable's standard properties. */
  metadata: Record<string, unknown>;
}

export interface BrowsedType {
  key: string;
  displayName: string;
  namespaceUri: string;
  /** Variables declared on the type (and its non-standard supertypes): member name → built-in type. */
  members: Map<string, { builtIn: DataType; isArray: boolean }>;
}

export interface BrowsedReference {
  sourceKey: string;
  referenceTypeKey: string;
  targetKey: string;
}

export interface BrowsedReferenceType {
  key: string;
  name: string;
  inverseName: string;
  namespaceUri: string;
}

export interface BrowsedDataType {
  key: string;
  name: string;
  namespaceUri: string;
  builtIn: DataType;
}

export interface AddressSpaceSnapshot {
  namespaceArray: string[];
  nodes: Map<string, BrowsedNode | BrowsedVariable>;
  objectTypes: Map<string, BrowsedType>;
  dataTypes: Map<string, BrowsedDataType>;
  referenceTypes: Map<string, BrowsedReferenceType>;
  references: BrowsedReference[];
  /** Nodes left out because `maxNodes` was reached. */
  leftOut: number;
}

export interface BrowseSettings {
  startNodes: readonly string[];
  includeStandardNamespace: boolean;
  maxNodes: number;
  relationships: boolean;
  batchSize: number;
}

// Standard reference types by numeric id in namespace 0.
const HAS_COMPONENT = 47;
const HAS_PROPERTY = 46;
const HAS_ORDERED_COMPONENT = 49;
const HAS_SUBTYPE = 45;
const HAS_HISTORICAL_CONFIGURATION = 56;
/** References that say what a node is rather than how it relates to another: never relationships. */
const NOT_RELATIONSHIPS = new Set([37, 38, 39, 40, 41, 45, 3065, 17603, 17604]);
/** Standard properties of a variable that are its metadata, not members of its own. */
const METADATA_PROPERTIES = new Set([
  "EngineeringUnits",
  "EURange",
  "InstrumentRange",
  "ValuePrecision",
  "Definition",
  "EnumStrings",
  "EnumValues",
  "TrueState",
  "FalseState",
]);

/** Standard properties that are the server's bookkeeping, not plant data: left out of the model. */
const HOUSEKEEPING_PROPERTIES = new Set(["NodeVersion", "Icon", "NamingRule", "DefaultInstanceBrowseName"]);

const text = (t: LocalizedText | null | undefined): string | undefined => t?.text ?? undefined;

function isStandardRef(nodeId: NodeId, id: number): boolean {
  return nodeId.namespace === 0 && nodeId.value === id;
}

async function readInBatches(
  session: ClientSession,
  items: { nodeId: NodeId; attributeId: number }[],
  batchSize: number,
) {
  const out = [];
  for (let i = 0; i < items.length; i += batchSize) {
    out.push(...(await session.read(items.slice(i, i + batchSize))));
  }
  return out;
}

async function browseInBatches(
  session: ClientSession,
  descriptions: Parameters<typeof browseAll>[1] & unknown[],
  batchSize: number,
) {
  const out = [];
  for (let i = 0; i < descriptions.length; i += batchSize) {
    out.push(...(await browseAll(session, descriptions.slice(i, i + batchSize))));
  }
  return out;
}

export async function browseAddressSpace(
  session: ClientSession,
  settings: BrowseSettings,
): Promise<AddressSpaceSnapshot> {
  const namespaceArray = await readNamespaces(session);
  const keyOf = (nodeId: NodeId) => nodeKey(nodeId, namespaceArray);
  const included = (nodeId: NodeId) =>
    settings.includeStandardNamespace
      ? namespaceArray[nodeId.namespace] !== undefined
      : nodeId.namespace !== 0;

  const nodes = new Map<string, BrowsedNode | BrowsedVariable>();
  const references: BrowsedReference[] = [];
  const seen = new Set<string>();
  let leftOut = 0;
  /** Variables' standard properties, read afterwards into their metadata. */
  const metadataProps: { variableKey: string; name: string; nodeId: NodeId }[] = [];

  let level: { nodeId: NodeId; key: string | null }[] = settings.startNodes.map((s) => {
    const nodeId = resolveNodeId(s, { namespaceArray });
    const key = keyOf(nodeId) ?? null;
    if (key) seen.add(key);
    // Start nodes are containers: what hangs below them is the top of the mapped hierarchy.
    return { nodeId, key: null };
  });

  while (level.length > 0) {
    const hierarchical = await browseInBatches(
      session,
      level.map((n) => ({
        nodeId: n.nodeId,
        referenceTypeId: resolveNodeId("HierarchicalReferences"),
        browseDirection: BrowseDirection.Forward,
        includeSubtypes: true,
        nodeClassMask: NodeClassMask.Object | NodeClassMask.Variable,
        resultMask: 0x3f,
      })),
      settings.batchSize,
    );
    const next: { nodeId: NodeId; key: string | null }[] = [];
    for (const [i, result] of hierarchical.entries()) {
      const parent = level[i];
      if (!parent) continue;
      const parentNode = parent.key ? nodes.get(parent.key) : undefined;
      for (const ref of result.references ?? []) {
        const childId = ref.nodeId as unknown as NodeId;
        if (!included(childId)) continue;
        const key = keyOf(childId);
        if (!key) continue;
        const browseName = ref.browseName.name ?? "";
        if (ref.browseName.namespaceIndex === 0 && HOUSEKEEPING_PROPERTIES.has(browseName)) continue;
        // A variable's historian settings (the "HA Configuration" object) say how it is archived, not what
        // the plant does.
        if (isStandardRef(ref.referenceTypeId, HAS_HISTORICAL_CONFIGURATION)) continue;
        if (
          parentNode?.nodeClass === "Variable" &&
          ref.browseName.namespaceIndex === 0 &&
          METADATA_PROPERTIES.has(browseName)
        ) {
          metadataProps.push({ variableKey: parentNode.key, name: browseName, nodeId: childId });
          seen.add(key);
          continue;
        }
        if (seen.has(key)) {
          if (parent.key && settings.relationships) {
            const refKey = keyOf(ref.referenceTypeId);
            if (refKey) references.push({ sourceKey: parent.key, referenceTypeKey: refKey, targetKey: key });
          }
          continue;
        }
        seen.add(key);
        if (nodes.size >= settings.maxNodes) {
          leftOut++;
          continue;
        }
        const component =
          isStandardRef(ref.referenceTypeId, HAS_COMPONENT) ||
          isStandardRef(ref.referenceTypeId, HAS_PROPERTY) ||
          isStandardRef(ref.referenceTypeId, HAS_ORDERED_COMPONENT);
        nodes.set(key, nodeOf(ref, key, childId, parent.key, component, keyOf));
        next.push({ nodeId: childId, key });
      }
    }
    if (settings.relationships) {
      await collectRelationships(session, next, settings.batchSize, keyOf, references);
    }
    level = next;
  }

  const variables = [...nodes.values()].filter((n): n is BrowsedVariable => n.nodeClass === "Variable");
  await readVariableAttributes(session, variables, settings.batchSize, keyOf);
  await readDescriptions(
    session,
    [...nodes.values()].filter((n) => n.nodeClass === "Object"),
    settings.batchSize,
  );
  await readMetadata(session, nodes, metadataProps, settings.batchSize);

  const dataTypes = await readDataTypes(session, variables, namespaceArray, settings.batchSize);
  for (const v of variables) v.builtIn = dataTypes.get(v.typeKey)?.builtIn ?? DataType.Variant;
  const objectTypes = await readObjectTypes(session, nodes, namespaceArray, settings.batchSize);

  // Only references between two mapped nodes, of a kind that is a relationship, survive.
  const kept = references.filter(
    (r) =>
      nodes.has(r.sourceKey) &&
      nodes.has(r.targetKey) &&
      !NOT_RELATIONSHIPS.has(standardNumber(r.referenceTypeKey) ?? -1),
  );
  const referenceTypes = await readReferenceTypes(session, kept, namespaceArray, settings.batchSize);
  return { namespaceArray, nodes, objectTypes, dataTypes, referenceTypes, references: kept, leftOut };
}

/** The server's namespace array, read afresh (the session caches the one it saw first). */
export async function readNamespaces(session: ClientSession): Promise<string[]> {
  const [dv] = await session.read([
    { nodeId: resolveNodeId("Server_NamespaceArray"), attributeId: AttributeIds.Value },
  ]);
  return (dv?.value?.value as string[] | undefined) ?? [];
}

function standardNumber(key: string): number | undefined {
  const prefix = `nsu=${STANDARD_NAMESPACE};i=`;
  return key.startsWith(prefix) ? Number(key.slice(prefix.length)) : undefined;
}

function nodeOf(
  ref: ReferenceDescription,
  key: string,
  nodeId: NodeId,
  parentKey: string | null,
  component: boolean,
  keyOf: (n: NodeId) => string | undefined,
): BrowsedNode | BrowsedVariable {
  const base = {
    key,
    nodeId,
    browseName: ref.browseName.name ?? key,
    displayName: text(ref.displayName) ?? ref.browseName.name ?? key,
    parentKey,
    component,
    typeKey: keyOf(ref.typeDefinition as unknown as NodeId) ?? `nsu=${STANDARD_NAMESPACE};i=58`,
  };
  if (ref.nodeClass === NodeClass.Variable) {
    return {
      ...base,
      nodeClass: "Variable",
      builtIn: DataType.Variant,
      isArray: false,
      writable: false,
      historizing: false,
      metadata: {},
    };
  }
  return { ...base, nodeClass: "Object" };
}

async function collectRelationships(
  session: ClientSession,
  level: { nodeId: NodeId; key: string | null }[],
  batchSize: number,
  keyOf: (n: NodeId) => string | undefined,
  out: BrowsedReference[],
): Promise<void> {
  const results = await browseInBatches(
    session,
    level.map((n) => ({
      nodeId: n.nodeId,
      referenceTypeId: resolveNodeId("NonHierarchicalReferences"),
      browseDirection: BrowseDirection.Forward,
      includeSubtypes: true,
      nodeClassMask: NodeClassMask.Object | NodeClassMask.Variable,
      resultMask: 0x3f,
    })),
    batchSize,
  );
  for (const [i, result] of results.entries()) {
    const source = level[i]?.key;
    if (!source) continue;
    for (const ref of result.references ?? []) {
      const target = keyOf(ref.nodeId as unknown as NodeId);
      const refKey = keyOf(ref.referenceTypeId);
      if (target && refKey) out.push({ sourceKey: source, referenceTypeKey: refKey, targetKey: target });
    }
  }
}

async function readVariableAttributes(
  session: ClientSession,
  variables: BrowsedVariable[],
  batchSize: number,
  keyOf: (n: NodeId) => string | undefined,
): Promise<void> {
  const attributes = [
    AttributeIds.DataType,
    AttributeIds.ValueRank,
    AttributeIds.UserAccessLevel,
    AttributeIds.Description,
    AttributeIds.Historizing,
  ];
  const values = await readInBatches(
    session,
    variables.flatMap((v) => attributes.map((attributeId) => ({ nodeId: v.nodeId, attributeId }))),
    batchSize,
  );
  for (const [i, v] of variables.entries()) {
    const [dataType, valueRank, access, description, historizing] = values.slice(i * 5, i * 5 + 5);
    const dataTypeId = dataType?.value?.value as NodeId | undefined;
    v.typeKey = (dataTypeId && keyOf(dataTypeId)) ?? `nsu=${STANDARD_NAMESPACE};i=24`;
    const rank = valueRank?.value?.value;
    v.isArray = typeof rank === "number" && rank >= 1;
    const level = access?.value?.value;
    v.writable = typeof level === "number" && (level & 2) !== 0;
    v.historizing = historizing?.value?.value === true;
    const d = text(description?.value?.value as LocalizedText | undefined);
    if (d) v.description = d;
  }
}

async function readDescriptions(session: ClientSession, objects: BrowsedNode[], batchSize: number) {
  const values = await readInBatches(
    session,
    objects.map((o) => ({ nodeId: o.nodeId, attributeId: AttributeIds.Description })),
    batchSize,
  );
  for (const [i, o] of objects.entries()) {
    const d = text(values[i]?.value?.value as LocalizedText | undefined);
    if (d) o.description = d;
  }
}

async function readMetadata(
  session: ClientSession,
  nodes: Map<string, BrowsedNode | BrowsedVariable>,
  props: { variableKey: string; name: string; nodeId: NodeId }[],
  batchSize: number,
): Promise<void> {
  const values = await readInBatches(
    session,
    props.map((p) => ({ nodeId: p.nodeId, attributeId: AttributeIds.Value })),
    batchSize,
  );
  for (const [i, p] of props.entries()) {
    const variable = nodes.get(p.variableKey) as BrowsedVariable | undefined;
    const v = values[i]?.value?.value as Record<string, unknown> | null | undefined;
    if (!variable || v === null || v === undefined) continue;
    if (p.name === "EngineeringUnits") {
      const eu = v as { displayName?: LocalizedText; unitId?: number; namespaceUri?: string };
      variable.metadata.engineeringUnits = {
        displayName: text(eu.displayName),
        unitId: eu.unitId,
        namespaceUri: eu.namespaceUri,
      };
    } else if (p.name === "EURange" || p.name === "InstrumentRange") {
      const r = v as { low?: number; high?: number };
      variable.metadata[p.name === "EURange" ? "euRange" : "instrumentRange"] = { low: r.low, high: r.high };
    } else {
      variable.metadata[p.name.charAt(0).toLowerCase() + p.name.slice(1)] = jsonish(v);
    }
  }
}

function jsonish(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(jsonish);
  if (v && typeof v === "object" && "text" in v) return text(v as LocalizedText);
  return typeof v === "object" ? JSON.parse(JSON.stringify(v)) : v;
}

async function readDataTypes(
  session: ClientSession,
  variables: BrowsedVariable[],
  namespaceArray: string[],
  batchSize: number,
): Promise<Map<string, BrowsedDataType>> {
  const keys = [...new Set(variables.map((v) => v.typeKey))];
  const ids = keys.map((k) => resolveNodeId(k, { namespaceArray }));
  const names = await readInBatches(
    session,
    ids.map((nodeId) => ({ nodeId, attributeId: AttributeIds.BrowseName })),
    batchSize,
  );
  const out = new Map<string, BrowsedDataType>();
  for (const [i, key] of keys.entries()) {
    const id = ids[i] as NodeId;
    let builtIn: DataType;
    try {
      builtIn = await findBasicDataType(session, id);
    } catch {
      builtIn = DataType.Variant;
    }
    const name = (names[i]?.value?.value as { name?: string } | null)?.name ?? key;
    out.set(key, { key, name, namespaceUri: namespaceArray[id.namespace] ?? STANDARD_NAMESPACE, builtIn });
  }
  return out;
}

async function readObjectTypes(
  session: ClientSession,
  nodes: Map<string, BrowsedNode | BrowsedVariable>,
  namespaceArray: string[],
  batchSize: number,
): Promise<Map<string, BrowsedType>> {
  const keys = [
    ...new Set([...nodes.values()].filter((n) => n.nodeClass === "Object").map((n) => n.typeKey)),
  ];
  const out = new Map<string, BrowsedType>();
  const ids = keys.map((k) => resolveNodeId(k, { namespaceArray }));
  const names = await readInBatches(
    session,
    ids.map((nodeId) => ({ nodeId, attributeId: AttributeIds.DisplayName })),
    batchSize,
  );
  for (const [i, key] of keys.entries()) {
    const id = ids[i] as NodeId;
    const members = new Map<string, { builtIn: DataType; isArray: boolean }>();
    // Members come from the type and its supertypes up to the standard namespace, whose types say nothing
    // a plant model needs.
    let at: NodeId | undefined = id;
    for (let depth = 0; at && at.namespace !== 0 && depth < 16; depth++) {
      await readTypeMembers(session, at, members);
      at = await superTypeOf(session, at);
    }
    out.set(key, {
      key,
      displayName: text(names[i]?.value?.value as LocalizedText) ?? key,
      namespaceUri: namespaceArray[id.namespace] ?? STANDARD_NAMESPACE,
      members,
    });
  }
  return out;
}

async function superTypeOf(session: ClientSession, typeId: NodeId): Promise<NodeId | undefined> {
  const result = await session.browse({
    nodeId: typeId,
    referenceTypeId: resolveNodeId("HasSubtype"),
    browseDirection: BrowseDirection.Inverse,
    includeSubtypes: false,
    resultMask: 0x3f,
  });
  return result.references?.[0]?.nodeId as unknown as NodeId | undefined;
}

async function readTypeMembers(
  session: ClientSession,
  typeId: NodeId,
  members: Map<string, { builtIn: DataType; isArray: boolean }>,
): Promise<void> {
  const [result] = await browseAll(session, [
    {
      nodeId: typeId,
      referenceTypeId: resolveNodeId("Aggregates"),
      browseDirection: BrowseDirection.Forward,
      includeSubtypes: true,
      nodeClassMask: NodeClassMask.Variable,
      resultMask: 0x3f,
    },
  ]);
  const refs = (result?.references ?? []).filter((r) => !isStandardRef(r.referenceTypeId, HAS_SUBTYPE));
  if (refs.length === 0) return;
  const values = await session.read(
    refs.flatMap((r) => [
      { nodeId: r.nodeId, attributeId: AttributeIds.DataType },
      { nodeId: r.nodeId, attributeId: AttributeIds.ValueRank },
    ]),
  );
  for (const [i, r] of refs.entries()) {
    const name = r.browseName.name;
    if (!name || members.has(name)) continue;
    const dataTypeId = values[i * 2]?.value?.value as NodeId | undefined;
    let builtIn = DataType.Variant;
    if (dataTypeId) {
      try {
        builtIn = await findBasicDataType(session, dataTypeId);
      } catch {
        // An unknown DataType leaves the member untyped in the schema.
      }
    }
    const rank = values[i * 2 + 1]?.value?.value;
    members.set(name, { builtIn, isArray: typeof rank === "number" && rank >= 1 });
  }
}

async function readReferenceTypes(
  session: ClientSession,
  references: BrowsedReference[],
  namespaceArray: string[],
  batchSize: number,
): Promise<Map<string, BrowsedReferenceType>> {
  const keys = [...new Set(references.map((r) => r.referenceTypeKey))];
  const ids = keys.map((k) => resolveNodeId(k, { namespaceArray }));
  const values = await readInBatches(
    session,
    ids.flatMap((nodeId) => [
      { nodeId, attributeId: AttributeIds.BrowseName },
      { nodeId, attributeId: AttributeIds.InverseName },
    ]),
    batchSize,
  );
  const out = new Map<string, BrowsedReferenceType>();
  for (const [i, key] of keys.entries()) {
    const name = (values[i * 2]?.value?.value as { name?: string } | null)?.name ?? key;
    const inverse = text(values[i * 2 + 1]?.value?.value as LocalizedText | null) ?? `${name} (inverse)`;
    out.set(key, {
      key,
      name,
      inverseName: inverse === name ? `${name} (inverse)` : inverse,
      namespaceUri: namespaceArray[(ids[i] as NodeId).namespace] ?? STANDARD_NAMESPACE,
    });
  }
  return out;
}
