/** The auth service's public module: what other parts of the product (CLI, local tier, drills) use. */

export { type IceServer, iceServersFor } from './core/ice-servers';
export { USERNAME_PATTERN } from './schemas';
export { mintAccessTokens, seedAccounts } from './seed';
export { type AuthService, type AuthServiceOptions, buildAuthService, runAuthService } from './server';
export { isAuthWorkerThread, serveAuthWorker } from './worker';
