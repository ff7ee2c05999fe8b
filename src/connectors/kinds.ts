import { KindRegistry } from "./framework/registry.js";
import { mqttConnectorKind } from "./mqtt/mqtt-connector.js";
import { opcuaKind } from "./opcua/index.js";
import { sparkplugConnectorKind } from "./sparkplug/sparkplug-connector.js";

/**
 * Every kind of connector the server knows. A kind adds one line here (its `ConnectorKind`); the
 * connectors file names kinds by their `kind`.
 */
export const connectorKinds = new KindRegistry([mqttConnectorKind, sparkplugConnectorKind, opcuaKind]);
