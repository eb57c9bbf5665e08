import { type BusEvent, type EventPosition, isGap, isNewerPosition, type NodeState, type Topology } from '@pgreplica/protocol';

/**
 * What applying one event did. `applied-reset`: a snapshot newer than the
 * last one applied, at an epoch not below ours, from a term below our
 * position — the bus was reset (Redis restarted empty); the position moves to it.
 */
export type ApplyOutcome = 'applied' | 'applied-gap' | 'applied-reset' | 'stale' | 'old-epoch' | 'ignored';

/**
 * The router's view of the cluster: the latest topology, the `(term, seq)`
 * position of the last event applied, when it was last fresh, and whether a
 * switchover holds writes. Applies bus events in order; never moves to a
 * lower epoch.
 */
export class TopologyStore {
  topology: Topology | null = null;
  position: EventPosition | null = null;
  /** `Date.now()` of the last event or local probe that refreshed the view. */
  freshAt = 0;
  /** Set between switchover.started and its end: writes wait. */
  switchover: { fromId: string; toId: string; startedAt: number } | null = null;
  /** Publication time (ms) of the last snapshot applied. */
  #snapshotAt = 0;

  get epoch(): number {
    return this.topology?.epoch ?? 0;
  }

  /** The primary of the highest epoch seen, as a node. */
  primary(): NodeState | null {
    const t = this.topology;
    if (!t?.primaryId) return null;
    return t.nodes.find((n) => n.id === t.primaryId) ?? null;
  }

  /** Replaces the topology from a source that is not the bus (static nodes, local probes). */
  setLocal(topology: Topology, now: number): void {
    if (this.topology && topology.epoch < this.topology.epoch) return;
    this.topology = topology;
    this.freshAt = now;
  }

  /** Applies one verified bus event. */
  apply(event: BusEvent, now: number): ApplyOutcome {
    let reset = false;
    if (!isNewerPosition(event, this.position)) {
      // Terms never go backwards on a healthy bus; a newer snapshot behind our position means it was reset.
      reset = event.type === 'snapshot' && this.position !== null && event.term < this.position.term && event.epoch >= this.epoch && Date.parse(event.at) > this.#snapshotAt;
      if (!reset) return 'stale';
    }
    if (event.epoch < this.epoch && (event.type === 'snapshot' || event.type === 'primary.changed')) return 'old-epoch';
    const gap = !reset && isGap(event, this.position);
    this.position = { term: event.term, seq: event.seq };
    this.freshAt = now;
    switch (event.type) {
      case 'snapshot':
        this.topology = event.topology;
        this.#snapshotAt = Date.parse(event.at);
        break;
      case 'node.status': {
        const t = this.topology;
        if (t) {
          const i = t.nodes.findIndex((n) => n.id === event.nodeId);
          if (i >= 0) t.nodes[i] = event.node;
          else t.nodes.push(event.node);
        }
        break;
      }
      case 'primary.changed': {
        const t = this.topology;
        if (t) {
          t.epoch = event.epoch;
          t.primaryId = event.toId;
          for (const n of t.nodes) {
            if (n.id === event.toId) n.role = 'primary';
            else if (n.id === event.fromId) n.role = 'unknown';
          }
        }
        this.switchover = null;
        break;
      }
      case 'switchover.started':
        this.switchover = { fromId: event.fromId, toId: event.toId, startedAt: now };
        break;
      case 'switchover.finished':
        this.switchover = null;
        break;
      default:
        return gap ? 'applied-gap' : 'ignored';
    }
    return reset ? 'applied-reset' : gap ? 'applied-gap' : 'applied';
  }
}
