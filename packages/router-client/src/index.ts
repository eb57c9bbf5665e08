export { BusClient } from './bus-client.js';
export type { BusClientEventMap, RedisSource } from './bus-client.js';
export { ClassifierCache, classify, DEFAULT_CLASSIFIER_CACHE_BYTES, DEFAULT_CLASSIFIER_CACHE_SIZE, SIDE_EFFECT_FUNCTIONS, SIDE_EFFECT_PREFIXES } from './classifier.js';
export type { Classification, ClassifierCacheOptions, ClassifierReason, ClassifyOptions } from './classifier.js';
export { FallbackBudgetExceededError, isConnectionError, isPoolWaitTimeout, RouterError } from './errors.js';
export type { RouterErrorCode } from './errors.js';
export { DEFAULT_ROUTER_OPTIONS, MIN_STALE_AFTER_MS } from './options.js';
export type { FallbackBudgetOptions, ReadDefaults, RouterLogger, RouterOptions, StaticNode } from './options.js';
export type { ConnectionOptions, PoolOptions } from './pool-set.js';
export { createRouter, Router } from './router.js';
export type {
  NodeMetrics,
  QueryOptions,
  ReadOptions,
  RouteDecision,
  RouterEventMap,
  TransactionClient,
  TransactionOptions,
  WriteResult,
} from './router-types.js';
export { rankReplicas, ReplicaSelector } from './selection.js';
export type { RankedReplica, Ranking, ReadConstraints, RouteReason } from './selection.js';
export { Session } from './session.js';
export { decodeToken, encodeToken, isPrimaryOnlyToken, laterToken, PRIMARY_ONLY_LSN } from './tokens.js';
export type { ConsistencyToken, DecodedToken } from './tokens.js';
