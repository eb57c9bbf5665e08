import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosCluster } from './cluster.js';
import type { FaultStep } from './schedule.js';

/** Records a fault's start or end (with what it hit) in the seed's history. */
export type FaultLog = (phase: 'start' | 'end', detail: string) => void;

/** Kills a node (-9), waits `holdMs`, starts it again: the worker fences and rejoins it if it was deposed. */
async function killFor(cluster: ChaosCluster, nodeId: string, holdMs: number, log: FaultLog): Promise<void> {
  log('start', `kill -9 ${nodeId}`);
  await cluster.kill(nodeId);
  await sleep(holdMs);
  log('end', await cluster.startUnlessFenced(nodeId));
}

/** Empties the WAL receivers' primary_conninfo (the replicas stop streaming), restores it after `holdMs` unless a repoint rewrote it meanwhile. */
async function cutReplication(cluster: ChaosCluster, holdMs: number, log: FaultLog): Promise<void> {
  const saved = new Map<string, string>();
  for (const id of cluster.replicaIds) {
    const node = cluster.sandbox.node(id);
    const rows = await node.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c").catch(() => []);
    if (!rows[0]) continue;
    saved.set(id, rows[0].c);
    await node.query("ALTER SYSTEM SET primary_conninfo = ''");
    await node.query('SELECT pg_reload_conf()');
  }
  log('start', `WAL receivers of ${[...saved.keys()].join(', ')} stopped`);
  await sleep(holdMs);
  for (const [id, conninfo] of saved) {
    const node = cluster.sandbox.node(id);
    const rows = await node.query<{ c: string }>("SELECT current_setting('primary_conninfo') AS c").catch(() => []);
    if (rows[0]?.c !== '') continue;
    await node.query(`ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`);
    await node.query('SELECT pg_reload_conf()');
  }
  log('end', 'WAL receivers restored');
}

/** Injects one fault and undoes it (a node started again, a proxy restored) before returning. */
export async function injectFault(cluster: ChaosCluster, step: FaultStep, log: FaultLog): Promise<void> {
  const primaryId = cluster.primaryId;
  const replicas = cluster.replicaIds;
  const replicaId = replicas[step.replica] ?? replicas[0]!;
  const otherReplicaId = replicas.find((id) => id !== replicaId) ?? replicaId;
  switch (step.kind) {
    case 'kill-primary':
      return killFor(cluster, primaryId, step.holdMs, log);
    case 'kill-replica':
      return killFor(cluster, replicaId, step.holdMs, log);
    case 'stop-primary': {
      const node = cluster.sandbox.node(primaryId);
      log('start', `SIGSTOP ${primaryId} (postmaster and backends)`);
      node.pause();
      await sleep(step.holdMs);
      log('end', cluster.resume(primaryId));
      return;
    }
    case 'restart-primary':
      log('start', `restart ${primaryId}`);
      await cluster.restart(primaryId);
      log('end', `${primaryId} restarted`);
      return;
    case 'cut-monitor-primary':
    case 'cut-worker-primary':
    case 'cut-router-redis': {
      const proxy =
        step.kind === 'cut-router-redis' ? cluster.redisProxy : (step.kind === 'cut-monitor-primary' ? cluster.clientProxies : cluster.workerProxies).get(primaryId)!;
      const what = step.kind === 'cut-router-redis' ? 'routers ↔ Redis' : step.kind === 'cut-monitor-primary' ? `monitor and routers ↔ ${primaryId}` : `worker ↔ ${primaryId}`;
      log('start', `network cut ${what}`);
      proxy.cutOff();
      await sleep(step.holdMs);
      proxy.restore();
      log('end', `network restored ${what}`);
      return;
    }
    case 'cut-replication':
      return cutReplication(cluster, step.holdMs, log);
    case 'redis-restart-empty':
      log('start', 'Redis restarted empty');
      cluster.busComplete = false;
      await cluster.sandbox.redis!.restart();
      log('end', 'Redis back (empty)');
      return;
    case 'worker-killed-mid-job': {
      log('start', `kill -9 ${primaryId}, then the worker once the failover started`);
      const since = cluster.bus.events.length;
      await cluster.kill(primaryId);
      await cluster.bus.waitFor((e) => e.type === 'failover.started', 15_000, 'failover.started', since).catch(() => null);
      const victim = cluster.workers.find((w) => w.child.exitCode === null && w.child.signalCode === null);
      victim?.child.kill('SIGKILL');
      log('start', `worker pid ${victim?.child.pid} killed (SIGKILL)`);
      await cluster.startWorker();
      await sleep(step.holdMs);
      log('end', `${await cluster.startUnlessFenced(primaryId)}; a new worker runs`);
      return;
    }
    case 'duplicate-promote': {
      const epoch = cluster.epoch;
      log('start', `kill -9 ${primaryId} and 2 duplicate promote jobs for epoch ${epoch}`);
      await cluster.kill(primaryId);
      await sleep(1_500);
      const payload = { cluster: 'main', epoch, failedPrimaryId: primaryId, automatic: true, dryRun: false, detectedAt: new Date().toISOString() };
      for (let i = 0; i < 2; i++) await cluster.enqueue('promote', payload, `promote.main.e${epoch}.dup.${randomUUID()}`).catch(() => {});
      await sleep(step.holdMs);
      log('end', await cluster.startUnlessFenced(primaryId));
      return;
    }
    case 'switchover-during-failure': {
      const epoch = cluster.epoch;
      log('start', `switchover ${primaryId} → ${replicaId} (epoch ${epoch}), then ${step.during === 'kill-primary' ? `kill -9 ${primaryId}` : `kill -9 ${otherReplicaId}`}`);
      await cluster.enqueue('switchover', { cluster: 'main', epoch, candidateId: replicaId, maxWritePauseMs: 5_000 }, `switchover.main.e${epoch}.${replicaId}.${randomUUID()}`);
      await sleep(step.delayMs % 400);
      return killFor(cluster, step.during === 'kill-primary' ? primaryId : otherReplicaId, step.holdMs, log);
    }
  }
}
