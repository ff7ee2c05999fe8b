import path from "node:path";
import { createKey, type KeyEntry, type Scope, writeKeysFile } from "../../src/security/keys.js";

export interface TestKey {
  token: string;
  entry: KeyEntry;
}

/** Creates keys (name → scopes, optional prefixes) and writes them to `<dir>/keys.json`. */
export async function writeTestKeys(
  dir: string,
  specs: Record<string, { scopes: Scope[]; prefixes?: string[] }>,
): Promise<{ file: string; keys: Record<string, TestKey> }> {
  const keys: Record<string, TestKey> = {};
  for (const [name, spec] of Object.entries(specs))
    keys[name] = await createKey(name, spec.scopes, spec.prefixes);
  const file = path.join(dir, "keys.json");
  writeKeysFile(file, { version: 1, keys: Object.values(keys).map((k) => k.entry) });
  return { file, keys };
}

export const bearer = (key: TestKey | string) => ({
  authorization: `Bearer ${typeof key === "string" ? key : key.token}`,
});
