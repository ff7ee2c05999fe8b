import { readFileSync } from "node:fs";
import path from "node:path";

/** The repository root (test/deploy/ is two levels below it). */
export const ROOT = path.resolve(import.meta.dirname, "../..");

export function readRepoFile(relative: string): string {
  return readFileSync(path.join(ROOT, relative), "utf8");
}

/** The configuration reference: one table of every variable the server reads. */
export const CONFIGURATION_DOC = "docs/configuration.md";

/** Every variable the server reads, as docs/configuration.md's table lists them. */
export function configurationTableVariables(): Set<string> {
  const names = new Set<string>();
  for (const line of readRepoFile(CONFIGURATION_DOC).split("\n")) {
    if (!line.startsWith("| `")) continue;
    const firstCell = line.split("|")[1];
    for (const m of firstCell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]);
  }
  return names;
}

/**
 * A variable the server reads: one of the configuration table, or a standard OpenTelemetry variable
 * docs/configuration.md names (the SDK reads those itself), or NODE_ENV.
 */
export function knownVariable(name: string, table = configurationTableVariables()): boolean {
  if (table.has(name) || name === "NODE_ENV") return true;
  return name.startsWith("OTEL_") && readRepoFile(CONFIGURATION_DOC).includes(`\`${name}`);
}
