/** The auth service's public module: what other parts of the product (CLI, local tier, drills) use. */

export { USERNAME_PATTERN } from './schemas';
export { mintAccessTokens, seedAccounts } from './seed';
export { type AuthService, type AuthServiceOptions, buildAuthService, runAuthService } from './server';
