#!/usr/bin/env node
// First: V8 settings that must hold before anything else is loaded.
import "./v8-flags.js";
import { type Config, loadConfig } from "./config.js";
import { ConfigError } from "./config-vars.js";
import { ConnectorsFileError } from "./connectors/framework/config-file.js";
import { importModelFile } from "./model/import.js";
import { configureLogging, flushLogs } from "./observability/logger.js";
import { type RunningServer, startServer } from "./runtime.js";
import { runKeysCommand } from "./security/keys-cli.js";
import { openStore } from "./store/index.js";
import { SERVER_VERSION } from "./version.js";

const USAGE = `Usage: i3xd [command]

Commands:
  serve            Start the i3X server (default). Configured by environment variables (see docs/configuration.md).
  import <file>    Load a model document (JSON) into the store, all or nothing.
  keys <command>   Manage API keys: create, list, revoke (i3xd keys --help).

Options:
  -h, --help       Show this help.
  -v, --version    Show the version.
`;

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  if (command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === "-v" || command === "--version") {
    process.stdout.write(`${SERVER_VERSION}\n`);
    return 0;
  }
  const config = readConfig();
  if (!config) return 2;
  switch (command) {
    case "serve":
      if (rest.length > 0) return usageError(`serve takes no arguments, got: ${rest.join(" ")}`);
      return serve(config);
    case "import":
      if (rest.length !== 1) return usageError("import needs exactly one file: i3xd import <file>");
      return importFile(config, rest[0]);
    case "keys":
      return runKeysCommand(config, rest);
    default:
      return usageError(`unknown command: ${command}`);
  }
}

function readConfig(): Config | undefined {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`i3xd: configuration error: ${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

function usageError(message: string): number {
  process.stderr.write(`i3xd: ${message}\n\n${USAGE}`);
  return 2;
}

/** Runs until SIGTERM or SIGINT, then shuts down gracefully; a second signal stops at once. */
async function serve(config: Config): Promise<number> {
  let server: RunningServer;
  try {
    server = await startServer(config);
  } catch (err) {
    // The connectors file is read at start-up, yet is as much configuration as the environment.
    if (err instanceof ConnectorsFileError) {
      process.stderr.write(`i3xd: configuration error: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`i3xd: could not start: ${describe(err)}\n`);
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`i3xd: ${signal} again, exiting without waiting\n`);
        resolve(1);
        return;
      }
      stopping = true;
      const timer = setTimeout(() => {
        process.stderr.write(`i3xd: shutdown took longer than ${config.shutdownTimeoutMs} ms, exiting\n`);
        resolve(1);
      }, config.shutdownTimeoutMs);
      timer.unref();
      server.close(signal).then(
        () => {
          clearTimeout(timer);
          resolve(0);
        },
        (err: unknown) => {
          clearTimeout(timer);
          process.stderr.write(`i3xd: shutdown failed: ${describe(err)}\n`);
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

async function importFile(config: Config, file: string): Promise<number> {
  // The store logs (migrations); those lines follow LOG_LEVEL/LOG_FORMAT/LOG_FILE as the server's do.
  configureLogging(config);
  const store = await openStore(config);
  try {
    const summary = await importModelFile(store, file);
    process.stdout.write(`Imported ${file}: ${formatSummary(summary)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`i3xd: import failed: ${describe(err)}\n`);
    return 1;
  } finally {
    await store.close();
    await flushLogs();
  }
}

function formatSummary(summary: unknown): string {
  if (summary && typeof summary === "object") {
    const parts = Object.entries(summary as Record<string, unknown>)
      .filter(([, v]) => typeof v === "number" || typeof v === "string")
      .map(([k, v]) => `${v} ${k}`);
    if (parts.length > 0) return parts.join(", ");
  }
  return JSON.stringify(summary);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`i3xd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
