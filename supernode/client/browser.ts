/**
 * The client SDK for browsers (`supernode-tier/browser`, built by build/browser-bundle.ts): the same
 * classes as in Node, over the browser's WebSocket and fetch, with tokens kept in localStorage.
 */
export { AuthClient, AuthError, type IceServer, type Tokens } from './auth-client';
export {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  type Random,
  type Scheduler,
  systemScheduler,
} from './backoff';
export {
  type CredentialStore,
  MemoryCredentialStore,
  type WebStorage,
  WebStorageCredentialStore,
} from './credential-store';
export type { CredentialsReason, Step } from './decisions';
export { Emitter } from './emitter';
export {
  type AuthApi,
  type ClientCounters,
  ClientError,
  type ClientEvents,
  type ClientSession,
  type NodeRef,
  type StopReason,
  SupernodeClient,
  type SupernodeClientOptions,
} from './resilient-client';
export { DEFAULT_RETRY_BUDGET, type RetryBudgetOptions } from './retry-budget';
export {
  type DeliveredMessage,
  SessionError,
  type SessionEvents,
  type SessionOptions,
  SupernodeSession,
} from './session';
export {
  type OpenTransport,
  type Transport,
  type WebSocketConstructor,
  type WebSocketLike,
  webSocketTransport,
} from './transport';
