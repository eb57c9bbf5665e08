import type { NodeSample } from '@pgreplica/probe';

/** A replica sample whose WAL receiver is in `status`, heard from `sender` `ageMs` before `nowMs`. */
export function receiverSample(status: string, ageMs: number, nowMs: number, sender = 'db1:5432', lsn = '0/3000000', walReceiverTimeoutMs = 10_000): NodeSample {
  return {
    inRecovery: true,
    walReceiverTimeoutMs,
    receiveLsn: lsn,
    replayLsn: lsn,
    walReceiver: {
      status,
      receivedTimeline: 1,
      lastMsgReceiptAt: new Date(nowMs - ageMs),
      senderHost: sender.split(':')[0]!,
      senderPort: Number(sender.split(':')[1]),
      slotName: 'r',
    },
  } as NodeSample;
}
