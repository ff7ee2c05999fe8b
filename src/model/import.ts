import fs from "node:fs/promises";
import type { Store } from "../store/store.js";
import { type KnownIds, ModelValidationError, validateModel } from "./validate.js";

export interface ImportSummary {
  namespaces: number;
  objectTypes: number;
  relationshipTypes: number;
  objects: number;
  relationships: number;
  values: number;
  historyPoints: number;
}

/**
 * Reads, validates and loads a model document. Validation sees what the store already holds, so a file
 * may extend an earlier import; the load is one transaction, so a failure leaves the store unchanged.
 */
export async function importModelFile(store: Store, file: string): Promise<ImportSummary> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new ModelValidationError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ModelValidationError(file, [`not valid JSON: ${(err as Error).message}`]);
  }
  const model = validateModel(doc, file, await knownIds(store));
  await store.importModel(model);
  return {
    namespaces: model.namespaces.length,
    objectTypes: model.objectTypes.length,
    relationshipTypes: model.relationshipTypes.length,
    objects: model.objects.length,
    relationships: model.relationships?.length ?? 0,
    values: model.values?.length ?? 0,
    historyPoints: model.history?.length ?? 0,
  };
}

async function knownIds(store: Store): Promise<KnownIds> {
  const [namespaces, types, relTypes, objects] = await Promise.all([
    store.listNamespaces(),
    store.listObjectTypes(),
    store.listRelationshipTypes(),
    store.listObjects(),
  ]);
  return {
    namespaces: new Set(namespaces.map((n) => n.uri)),
    objectTypes: new Set(types.map((t) => t.elementId)),
    relationshipTypes: new Map(relTypes.map((t) => [t.elementId, t.reverseOf])),
    objects: new Set(objects.map((o) => o.elementId)),
  };
}
