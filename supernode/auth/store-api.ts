import type { Account, AccountStore } from './store';

/**
 * What the service's core calls on the store, and exactly what the auth worker (auth/worker.ts)
 * serves. Apart from store.ts so that the main thread never loads the AWS SDK: only types cross.
 */
export const ACCOUNT_STORE_METHODS = [
  'createAccount',
  'getAccount',
  'setPassword',
  'setDisabled',
  'recordLoginFailure',
  'clearLoginFailures',
  'putRefreshToken',
  'useRefreshToken',
  'revokeFamily',
  'isFamilyRevoked',
  'putRevocation',
  'listRevocations',
] as const satisfies readonly (keyof AccountStore)[];

export type AccountStoreApi = Pick<AccountStore, (typeof ACCOUNT_STORE_METHODS)[number]>;

/** A fresh account as sign-up stores it. */
export function newAccount(username: string, passwordHash: string, now: number = Date.now()): Account {
  return {
    username,
    passwordHash,
    disabled: false,
    createdAt: now,
    passwordChangedAt: now,
    failedLogins: 0,
    lockedUntil: 0,
  };
}
