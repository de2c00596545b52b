import type { AuthMetrics } from '../metrics';
import { needsRehash, type PasswordHasher, type ScryptParams } from '../passwords';
import { type AccountStoreApi, newAccount } from '../store-api';
import type { Admitted, Gates } from './gates';
import type { Lockout } from './lockout';
import { type Outcome, type Refusal, refusal, success, WRONG_CREDENTIALS } from './outcome';
import type { RevocationPublisher } from './revocations';
import type { TokenIssuer } from './tokens';

export interface AccountsOptions {
  store: AccountStoreApi;
  gates: Gates;
  lockout: Lockout;
  tokens: TokenIssuer;
  revocations: RevocationPublisher;
  metrics: AuthMetrics;
  scrypt: ScryptParams;
  /** The scrypt calls; the service passes its worker thread's (auth/worker.ts). */
  passwords: PasswordHasher;
}

/** Sign-up, password login, password change and disabling: the password-class work of the service. */
export class Accounts {
  constructor(private readonly options: AccountsOptions) {}

  /**
   * Each password-class call takes the admission its request was given before its body was read
   * (the routes' onRequest hook), or is admitted here when called directly.
   */
  private admitted(ip: string, route: string, admitted?: Admitted): Admitted | Refusal {
    return admitted ?? this.options.gates.admit(ip, route);
  }

  async signUp(ip: string, username: string, password: string, early?: Admitted): Promise<Outcome> {
    const { gates, store, metrics, scrypt, passwords } = this.options;
    const admitted = this.admitted(ip, 'create_account', early);
    if ('ok' in admitted) return admitted;
    return gates.password(admitted, username, 'create_account', async (inSlot) => {
      const passwordHash = await inSlot(() => passwords.hashPassword(password, scrypt));
      const outcome = await store.createAccount(newAccount(username, passwordHash));
      metrics.requests.inc({ route: 'create_account', outcome });
      if (outcome === 'exists') return refusal(409, 'username_taken', 'that username is taken');
      return success({ username }, 201);
    });
  }

  async login(ip: string, username: string, password: string, early?: Admitted): Promise<Outcome> {
    const { gates, store, metrics, scrypt, passwords, lockout, tokens } = this.options;
    const admitted = this.admitted(ip, 'login', early);
    if ('ok' in admitted) return admitted;
    return gates.password(admitted, username, 'login', async (inSlot) => {
      const account = await store.getAccount(username);
      const now = Date.now();
      const until = lockout.lockedUntil(account, username, now);
      if (until) {
        metrics.requests.inc({ route: 'login', outcome: 'locked' });
        return refusal(429, 'too_many_attempts', 'too many failed attempts; try later', until - now);
      }
      // An unknown name costs a hash too, so timing does not tell whether the account exists.
      // One slot covers the check and, when the stored parameters are below today's, the re-hash.
      const { valid, upgradedHash } = await inSlot(async () => {
        if (!account)
          return { valid: await passwords.dummyVerify(password, scrypt), upgradedHash: undefined };
        const ok = await passwords.verifyPassword(password, account.passwordHash);
        const upgrade =
          ok && needsRehash(account.passwordHash, scrypt)
            ? await passwords.hashPassword(password, scrypt)
            : undefined;
        return { valid: ok, upgradedHash: upgrade };
      });
      if (!valid || !account) {
        await lockout.recordFailure(account, username, Date.now());
        metrics.requests.inc({ route: 'login', outcome: 'invalid' });
        return WRONG_CREDENTIALS();
      }
      if (account.disabled) {
        metrics.requests.inc({ route: 'login', outcome: 'disabled' });
        return refusal(403, 'account_disabled', 'this account is disabled');
      }
      if (account.failedLogins > 0) await store.clearLoginFailures(username);
      // Same password, stronger hash: keep passwordChangedAt so existing refresh tokens stay valid.
      if (upgradedHash) await store.setPassword(username, upgradedHash, account.passwordChangedAt);
      metrics.requests.inc({ route: 'login', outcome: 'ok' });
      metrics.totals.succeeded++;
      return success(await tokens.issue(username));
    });
  }

  async changePassword(
    ip: string,
    username: string,
    currentPassword: string,
    newPassword: string,
    early?: Admitted,
  ): Promise<Outcome> {
    const { gates, store, metrics, scrypt, passwords, lockout, revocations } = this.options;
    const admitted = this.admitted(ip, 'change_password', early);
    if ('ok' in admitted) return admitted;
    return gates.password(admitted, username, 'change_password', async (inSlot) => {
      const account = await store.getAccount(username);
      const now = Date.now();
      const until = lockout.lockedUntil(account, username, now);
      if (until) return refusal(429, 'too_many_attempts', 'too many failed attempts; try later', until - now);
      const newHash = await inSlot(async () => {
        const valid = account
          ? await passwords.verifyPassword(currentPassword, account.passwordHash)
          : await passwords.dummyVerify(currentPassword, scrypt);
        return valid && account && !account.disabled
          ? passwords.hashPassword(newPassword, scrypt)
          : undefined;
      });
      if (!newHash) {
        await lockout.recordFailure(account, username, Date.now());
        metrics.requests.inc({ route: 'change_password', outcome: 'invalid' });
        return WRONG_CREDENTIALS();
      }
      const changedAt = Date.now();
      await store.setPassword(username, newHash, changedAt);
      // Sessions and refresh tokens from before the change stop working.
      await revocations.revoke({ kind: 'user', id: username, at: changedAt });
      metrics.requests.inc({ route: 'change_password', outcome: 'ok' });
      return success({ username, passwordChangedAt: changedAt });
    });
  }

  /** Disables the account and revokes every session and refresh token it has. */
  async disable(username: string): Promise<Outcome> {
    const { store, revocations } = this.options;
    if (!(await store.setDisabled(username, true))) return refusal(404, 'not_found', 'no such account');
    await revocations.revoke({ kind: 'user', id: username, at: Date.now() });
    return success({ username, disabled: true });
  }
}
