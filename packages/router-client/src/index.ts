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
export { DEFAULT_ROUTER_POOL_OPTIONS, RouterPool } from './router-pool.js';
export type { RouterPoolOptions } from './router-pool.js';
export { RouterPoolClient } from './router-pool-client.js';
export type { CheckoutMode } from './router-pool-client.js';
export { Session } from './session.js';
export { currentSession, runWithSession } from './session-context.js';
export { isReadOnlyBegin, statementText } from './statement.js';
export type { Statement } from './statement.js';
export { decodeToken, encodeToken, isPrimaryOnlyToken, laterToken, PRIMARY_ONLY_LSN } from './tokens.js';
export type { ConsistencyToken, DecodedToken } from './tokens.js';
