// `i3xd` as the CLI runs it, with the test-only source kind registered first (test-source.ts says why):
// `node --import tsx test/connectors/cli-child.ts serve`.
import { connectorKinds } from "../../src/connectors/kinds.js";
import { testSourceKind } from "./test-source.js";

connectorKinds.register(testSourceKind);
await import("../../src/cli.js");
