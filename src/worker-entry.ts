import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The entry of a worker thread, `name` relative to the module that starts it: `<name>.js` in a built
 * install, `<name>-from-source.mjs` when i3xd runs from its TypeScript sources (`node --import tsx`, the
 * tests). Worker threads on Node 20 do not inherit the main thread's tsx loader, so that sibling loads
 * `<name>.ts` through tsx itself.
 */
export function workerEntry(moduleUrl: string, name: string): URL {
  const fromSource = path.extname(fileURLToPath(moduleUrl)) === ".ts";
  return new URL(`./${name}${fromSource ? "-from-source.mjs" : ".js"}`, moduleUrl);
}
