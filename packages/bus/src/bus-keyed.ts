import type { BusKeys } from '@pgreplica/protocol';
import type { Cluster, Redis } from 'ioredis';

/** A view of state kept under one cluster's bus keys, on one Redis connection. */
export abstract class BusKeyed {
  protected readonly redis: Redis | Cluster;
  protected readonly keys: BusKeys;

  constructor(redis: Redis | Cluster, keys: BusKeys) {
    this.redis = redis;
    this.keys = keys;
  }
}
