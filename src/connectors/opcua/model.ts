import type { Namespace, RelationshipType } from "../../domain/model.js";
import { COMPONENT_OF, HAS_COMPONENT } from "../../domain/model.js";
import type { ModelDocument, ModelObject, ModelObjectType, ModelRelationship } from "../../model/format.js";
import type { AddressSpaceSnapshot, BrowsedVariable } from "./browse.js";
import type { ConnectorIds } from "./ids.js";
import { schemaOfVariable } from "./values.js";

/** The i3X namespace of the built-in relationship types (`HasComponent`/`ComponentOf`). */
const I3X_NAMESPACE = "https://cesmii.org/i3x";

/**
 * A browsed address space as i3X model pieces (the mapping table in docs/connectors.md): objects and
 * variables become objects, ObjectTypes and DataTypes object types, non-hierarchical references
 * relationship types and relationships. Variables that hang below a node by HasComponent or HasProperty
 * are its composition members: they sit below it in the hierarchy and carry a `HasComponent` edge.
 */
export function modelOf(snapshot: AddressSpaceSnapshot, ids: ConnectorIds): Partial<ModelDocument> {
  const namespaces = new Map<string, Namespace>([
    [I3X_NAMESPACE, { uri: I3X_NAMESPACE, displayName: "i3X" }],
  ]);
  const addNamespace = (uri: string) => {
    if (!namespaces.has(uri)) namespaces.set(uri, { uri, displayName: uri });
  };

  const objectTypes = new Map<string, ModelObjectType>();
  for (const t of snapshot.objectTypes.values()) {
    addNamespace(t.namespaceUri);
    const properties: Record<string, unknown> = {};
    for (const [name, m] of t.members) properties[name] = schemaOfVariable(m.builtIn, m.isArray);
    objectTypes.set(ids.objectType(t.key), {
      elementId: ids.objectType(t.key),
      displayName: t.displayName,
      namespaceUri: t.namespaceUri,
      sourceTypeId: t.key,
      schema: { type: "object", properties },
    });
  }

  const objects: ModelObject[] = [];
  const relationships: ModelRelationship[] = [];
  for (const node of snapshot.nodes.values()) {
    const system: Record<string, unknown> = { source: node.key, nodeClass: node.nodeClass };
    let typeElementId: string;
    if (node.nodeClass === "Variable") {
      const v = node as BrowsedVariable;
      const dataType = snapshot.dataTypes.get(v.typeKey);
      typeElementId = ids.valueType(v.typeKey, v.isArray);
      if (!objectTypes.has(typeElementId)) {
        const uri = dataType?.namespaceUri ?? I3X_NAMESPACE;
        addNamespace(uri);
        const name = dataType?.name ?? v.typeKey;
        objectTypes.set(typeElementId, {
          elementId: typeElementId,
          displayName: v.isArray ? `${name}[]` : name,
          namespaceUri: uri,
          sourceTypeId: v.typeKey,
          schema: schemaOfVariable(v.builtIn, v.isArray),
        });
      }
      system.dataType = dataType?.name ?? v.typeKey;
      system.writable = v.writable;
      system.historizing = v.historizing;
      Object.assign(system, v.metadata);
    } else {
      typeElementId = ids.objectType(node.typeKey);
    }
    objects.push({
      elementId: ids.element(node.key),
      displayName: node.displayName,
      typeElementId,
      parentId: node.parentKey ? ids.element(node.parentKey) : null,
      ...(node.description ? { description: node.description } : {}),
      system: { opcua: system, source: node.key },
    });
    if (node.parentKey && node.component && node.nodeClass === "Variable") {
      relationships.push({
        sourceId: ids.element(node.parentKey),
        relationshipType: HAS_COMPONENT,
        targetId: ids.element(node.key),
      });
    }
  }

  const relationshipTypes: RelationshipType[] = [
    pair(HAS_COMPONENT, COMPONENT_OF, HAS_COMPONENT, I3X_NAMESPACE),
    pair(COMPONENT_OF, HAS_COMPONENT, COMPONENT_OF, I3X_NAMESPACE),
  ];
  for (const r of snapshot.referenceTypes.values()) {
    addNamespace(r.namespaceUri);
    const forward = ids.referenceType(r.key, false);
    const inverse = ids.referenceType(r.key, true);
    relationshipTypes.push(pair(forward, inverse, r.name, r.namespaceUri));
    relationshipTypes.push(pair(inverse, forward, r.inverseName, r.namespaceUri));
  }
  for (const r of snapshot.references) {
    relationships.push({
      sourceId: ids.element(r.sourceKey),
      relationshipType: ids.referenceType(r.referenceTypeKey, false),
      targetId: ids.element(r.targetKey),
    });
  }

  return {
    namespaces: [...namespaces.values()],
    objectTypes: [...objectTypes.values()],
    relationshipTypes,
    objects,
    relationships,
  };
}

function pair(
  elementId: string,
  reverseOf: string,
  displayName: string,
  namespaceUri: string,
): RelationshipType {
  return { elementId, displayName, namespaceUri, relationshipId: displayName, reverseOf };
}
