import { resolveAuthority } from '@pgreplica/decisions';
import type { ProbeResult } from '@pgreplica/probe';
import type { PrimaryRecord } from '@pgreplica/protocol';
import { UnrecoverableError } from 'bullmq';
import type { JobContext } from './context.js';

/**
 * Who is primary in which epoch, as the worker establishes it at run time:
 * the bus record and the `pgreplica.epoch` rows of every node it reached, the
 * highest epoch winning (the database is the durable truth; the bus may have
 * lost its last write). Never the monitor's word alone.
 * @throws UnrecoverableError when neither knows a primary yet
 */
export async function currentAuthority(ctx: JobContext, probes: ReadonlyMap<string, ProbeResult>): Promise<PrimaryRecord> {
  const bus = await ctx.authority.primaryRecord();
  const nodes = [...probes.values()].flatMap((p) =>
    p.ok ? [{ nodeId: p.nodeId, writable: !p.sample.inRecovery, systemIdentifier: p.sample.systemIdentifier, row: p.sample.epoch }] : [],
  );
  const resolution = resolveAuthority({ bus, nodes, floorEpoch: 0 });
  if (resolution.kind !== 'record') throw new UnrecoverableError(`no primary recorded yet (bus or databases): ${resolution.kind === 'none' ? resolution.reason : 'the monitor has not recorded the first primary'}`);
  return resolution.record;
}
