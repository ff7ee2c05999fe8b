import { format, stripVTControlCharacters } from "node:util";
import { setErrorLogger, setWarningLogger } from "node-opcua-client";
import { getLogger } from "../../observability/logger.js";
import type { ConnectorKind } from "../connector.js";
import { OpcuaConnector } from "./opcua-connector.js";
import { optionsSchema } from "./options.js";

let libraryLogsRouted = false;

/**
 * node-opcua prints its warnings to the console; they belong in the one log stream instead. Its warnings
 * come as many lines per failed attempt (a refused certificate prints its whole description on every
 * retry), so they go to DEBUG; the connector logs the reason itself, once per change, at WARNING.
 */
function routeLibraryLogs(): void {
  if (libraryLogsRouted) return;
  libraryLogsRouted = true;
  const log = getLogger("i3xd.connector.opcua-library");
  // The library's first argument is often its own source location ({ filename, callerline }): noise here.
  const text = (args: unknown[]) => {
    const [first, ...rest] = args;
    const shown = first !== null && typeof first === "object" && "callerline" in first ? rest : args;
    return stripVTControlCharacters(format(...shown)).trim();
  };
  setWarningLogger((...args: unknown[]) => log.debug(text(args)));
  setErrorLogger((...args: unknown[]) => log.warn(text(args)));
}

/** `kind: opcua`: one OPC UA server per connector (docs/connectors.md, "OPC UA"). */
export const opcuaKind: ConnectorKind = {
  kind: "opcua",
  optionsSchema,
  create: (settings) => {
    routeLibraryLogs();
    return new OpcuaConnector(settings);
  },
};
