import type { Vqt } from "./model.js";

/** A stored change of an element's current value. */
export interface ValueChange {
  elementId: string;
  vqt: Vqt;
}

export type ChangeListener = (changes: readonly ValueChange[]) => void;

/**
 * The notification seam between the write path and its consumers (subscriptions, caches). In one process
 * delivery is synchronous, so a write has reached every queue before its HTTP response is sent. A
 * multi-replica deployment feeds the same interface from the database's notifications.
 */
export interface ChangeFeed {
  publish(changes: readonly ValueChange[]): void;
  subscribe(listener: ChangeListener): () => void;
}

export class LocalChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<ChangeListener>();

  publish(changes: readonly ValueChange[]): void {
    if (changes.length === 0) return;
    for (const listener of this.listeners) listener(changes);
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
