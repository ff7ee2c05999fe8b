import type { ConnectorKind } from "../connector.js";

/** The kinds of connector the server knows, by name. */
export class KindRegistry {
  private readonly kinds = new Map<string, ConnectorKind>();

  constructor(kinds: readonly ConnectorKind[] = []) {
    for (const kind of kinds) this.register(kind);
  }

  register(kind: ConnectorKind): void {
    if (this.kinds.has(kind.kind)) throw new Error(`connector kind "${kind.kind}" is registered twice`);
    this.kinds.set(kind.kind, kind);
  }

  /** Removes a kind again (a test that registered a source of its own). */
  unregister(kind: string): void {
    this.kinds.delete(kind);
  }

  get(kind: string): ConnectorKind | undefined {
    return this.kinds.get(kind);
  }

  names(): string[] {
    return [...this.kinds.keys()].sort();
  }
}
