import { NodeId, resolveNodeId } from "node-opcua-client";

/**
 * Element ids of what an OPC UA connector maps (docs/connectors.md, "OPC UA ids"). A node is named by its
 * namespace URI and its identifier, in OPC UA's own text form `nsu=<uri>;<i|s|g|b>=<identifier>`, never by
 * its namespace index: a server may renumber its namespaces when it restarts, the URIs stay. The
 * connector's name comes first so that two servers with the same namespaces (two machines of one model)
 * never share an id. Every id reads back into its node id with `nodeIdOf`.
 */

export const STANDARD_NAMESPACE = "http://opcfoundation.org/UA/";

/** `nsu=<uri>;<identifier>` of a node, or undefined when its namespace index is not in the array. */
export function nodeKey(nodeId: NodeId, namespaceArray: readonly string[]): string | undefined {
  const uri = namespaceArray[nodeId.namespace];
  if (uri === undefined) return undefined;
  const local = new NodeId(nodeId.identifierType, nodeId.value, 0).toString().replace(/^ns=0;/, "");
  return `nsu=${uri};${local}`;
}

/** The node a key names, with the namespace index the server uses now. Throws on a malformed key. */
export function nodeIdOf(key: string, namespaceArray: readonly string[]): NodeId {
  const nodeId = resolveNodeId(key, { namespaceArray: [...namespaceArray] });
  if (key.startsWith("nsu=") && !namespaceArray.includes(namespaceUriOf(key))) {
    throw new Error(`namespace "${namespaceUriOf(key)}" is not on the server`);
  }
  return nodeId;
}

/** The namespace URI of a key. */
export function namespaceUriOf(key: string): string {
  const end = key.search(/;[isgb]=/);
  return key.slice(4, end);
}

/** Builds and reads back the ids one connector gives elements, types and relationship types. */
export class ConnectorIds {
  constructor(private readonly connector: string) {}

  element(key: string): string {
    return `${this.connector}:${key}`;
  }

  /** The node key of one of this connector's element ids, or undefined for any other id. */
  keyOf(elementId: string): string | undefined {
    const prefix = `${this.connector}:nsu=`;
    return elementId.startsWith(prefix) ? elementId.slice(this.connector.length + 1) : undefined;
  }

  /** An i3X object type standing for an OPC UA ObjectType. */
  objectType(key: string): string {
    return `${this.connector}:type:${key}`;
  }

  /** An i3X object type for variables of one DataType (`[]` appended for arrays). */
  valueType(dataTypeKey: string, isArray: boolean): string {
    return `${this.connector}:type:${dataTypeKey}${isArray ? "[]" : ""}`;
  }

  /** The relationship type of an OPC UA reference type, and the one for its inverse direction. */
  referenceType(key: string, inverse: boolean): string {
    return `${this.connector}:ref:${key}${inverse ? ":inverse" : ""}`;
  }
}
