import { mkdirSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config.js";
import { createKey, KeyConfigError, parseEnvKeys, readKeysFile, type Scope, writeKeysFile } from "./keys.js";

export const KEYS_USAGE = `Usage: i3xd keys <command>

Commands:
  create --name <name> --scope read[,write] [--prefix <elementId prefix>]... [--env]
                   Create an API key. The key is printed once; only its salted hash is stored, in the
                   keys file (I3XD_KEYS_FILE, default <I3XD_DATA_DIR>/keys.json). With --env nothing is
                   written: the hashed entry is printed for I3XD_API_KEYS instead.
  list             Show the keys in the keys file (id, name, scopes, prefixes; never secrets).
  revoke <id|name> Remove a key from the keys file. A running server stops accepting it within seconds.
`;

interface Out {
  stdout(text: string): void;
  stderr(text: string): void;
}

const defaultOut: Out = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** `i3xd keys …`; returns the exit code (2 for usage errors, 1 for failures). */
export async function runKeysCommand(config: Config, args: string[], out: Out = defaultOut): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case "create":
        return await create(config, rest, out);
      case "list":
        if (rest.length > 0) return usage(out, "keys list takes no arguments");
        return list(config, out);
      case "revoke":
        if (rest.length !== 1) return usage(out, "keys revoke needs exactly one key id or name");
        return revoke(config, rest[0], out);
      case undefined:
      case "-h":
      case "--help":
      case "help":
        out.stdout(KEYS_USAGE);
        return sub === undefined ? 2 : 0;
      default:
        return usage(out, `unknown keys command: ${sub}`);
    }
  } catch (err) {
    if (err instanceof KeyConfigError) {
      out.stderr(`i3xd: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function usage(out: Out, message: string): number {
  out.stderr(`i3xd: ${message}\n\n${KEYS_USAGE}`);
  return 2;
}

async function create(config: Config, args: string[], out: Out): Promise<number> {
  let name: string | undefined;
  const scopes: string[] = [];
  const prefixes: string[] = [];
  let env = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] =
      arg.startsWith("--") && arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined || v === "") throw new KeyConfigError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--name":
        name = value();
        break;
      case "--scope":
      case "--scopes":
        scopes.push(...value().split(","));
        break;
      case "--prefix":
        prefixes.push(value());
        break;
      case "--env":
        env = true;
        break;
      default:
        return usage(out, `keys create: unknown option ${arg}`);
    }
  }
  if (name === undefined) return usage(out, "keys create needs --name <name>");
  if (scopes.length === 0) return usage(out, "keys create needs --scope read, write or read,write");

  const existing = env ? { version: 1 as const, keys: [] } : readKeysFile(config.keysFile);
  const known = [...existing.keys, ...parseEnvKeys(config.apiKeys)];
  if (!env && existing.keys.some((k) => k.name === name)) {
    throw new KeyConfigError(`a key named "${name}" already exists in ${config.keysFile}; revoke it first`);
  }
  const { token, entry } = await createKey(
    name,
    scopes as Scope[],
    prefixes,
    new Set(known.map((k) => k.id)),
  );
  if (env) {
    out.stdout(`${token}\n`);
    out.stderr(
      `Created key ${entry.id} (${entry.name}). The key above is shown only now. Add this entry to the ` +
        `JSON list in I3XD_API_KEYS:\n${JSON.stringify(entry)}\n`,
    );
    return 0;
  }
  mkdirSync(path.dirname(config.keysFile), { recursive: true });
  writeKeysFile(config.keysFile, { version: 1, keys: [...existing.keys, entry] });
  out.stdout(`${token}\n`);
  out.stderr(
    `Created key ${entry.id} (${entry.name}, scopes ${entry.scopes.join(",")}${
      entry.prefixes ? `, prefixes ${entry.prefixes.join(" ")}` : ""
    }) in ${config.keysFile}. The key above is shown only now: store it safely.\n`,
  );
  return 0;
}

function list(config: Config, out: Out): number {
  const { keys } = readKeysFile(config.keysFile);
  if (keys.length === 0) {
    out.stderr(`No keys in ${config.keysFile}\n`);
    return 0;
  }
  const rows = keys.map((k) => [
    k.id,
    k.name,
    k.scopes.join(","),
    k.prefixes?.join(" ") ?? "*",
    k.created ?? "",
  ]);
  const head = ["ID", "NAME", "SCOPES", "PREFIXES", "CREATED"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    `${r
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd()}\n`;
  out.stdout(line(head) + rows.map(line).join(""));
  return 0;
}

function revoke(config: Config, which: string, out: Out): number {
  const file = readKeysFile(config.keysFile);
  const byId = file.keys.filter((k) => k.id === which);
  const matches = byId.length > 0 ? byId : file.keys.filter((k) => k.name === which);
  if (matches.length === 0) {
    out.stderr(`i3xd: no key with id or name "${which}" in ${config.keysFile}\n`);
    return 1;
  }
  const gone = new Set(matches.map((k) => k.id));
  writeKeysFile(config.keysFile, { version: 1, keys: file.keys.filter((k) => !gone.has(k.id)) });
  for (const k of matches) out.stderr(`Revoked key ${k.id} (${k.name})\n`);
  return 0;
}
