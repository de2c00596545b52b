import { createHash, randomBytes } from 'node:crypto';
import type { KeyRing } from '../key-ring';
import { signAccessToken } from '../signing';
import type { AccountStoreApi } from '../store-api';
import type { IceServer, IceServerIssuer } from './ice-servers';
import { type Outcome, refusal, success } from './outcome';
import type { RevocationPublisher } from './revocations';

export interface TokenPolicy {
  audience: string;
  issuer: string;
  accessTtlSec: number;
  refreshTtlSec: number;
}

export interface TokenPair {
  tokenType: 'Bearer';
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  /** With --turn-urls: TURN servers and credentials for RTCPeerConnection (docs/auth.md#tokens). */
  iceServers?: IceServer[];
}

/** What each refresh outcome is counted as; `ok` is the only success. */
export type RefreshOutcome = 'ok' | 'reused' | 'account_changed' | 'unknown' | 'expired' | 'family_revoked';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/**
 * Access tokens (EdDSA JWTs that supernodes verify offline) and refresh tokens (opaque, stored
 * hashed, rotated on every use; a used one presented again revokes its whole family).
 */
export class TokenIssuer {
  constructor(
    private readonly store: AccountStoreApi,
    private readonly keys: KeyRing,
    private readonly revocations: RevocationPublisher,
    private readonly policy: TokenPolicy,
    private readonly iceServers?: IceServerIssuer,
  ) {}

  /** A new family, after a password login. */
  issue(username: string): Promise<TokenPair> {
    return this.issueInFamily(username, randomBytes(12).toString('base64url'));
  }

  async refresh(presented: string): Promise<{ outcome: RefreshOutcome; answer: Outcome<TokenPair> }> {
    const replacement = randomBytes(32).toString('base64url');
    const use = await this.store.useRefreshToken(sha256(presented), Date.now(), sha256(replacement));
    const invalid = refusal(401, 'invalid_refresh_token', 'refresh token is not valid');
    if (use.status === 'reused') {
      // A used token presented again: it was stolen or replayed. The whole family goes.
      await this.revokeFamily(use.record.familyId);
      return { outcome: 'reused', answer: invalid };
    }
    if (use.status !== 'rotated') return { outcome: use.status, answer: invalid };
    const account = await this.store.getAccount(use.record.username);
    if (!account || account.disabled || account.passwordChangedAt > use.record.issuedAt)
      return { outcome: 'account_changed', answer: invalid };
    const tokens = await this.issueInFamily(use.record.username, use.record.familyId, replacement);
    return { outcome: 'ok', answer: success(tokens) };
  }

  /** Ends the refresh token's family; an unknown token is no error (logging out twice is fine). */
  async logout(presented: string): Promise<void> {
    const use = await this.store.useRefreshToken(sha256(presented), Date.now(), 'logout');
    if (use.status !== 'unknown') await this.revokeFamily(use.record.familyId);
  }

  private async revokeFamily(familyId: string): Promise<void> {
    const at = Date.now();
    await this.store.revokeFamily(familyId, at, at + this.policy.refreshTtlSec * 1000);
    await this.revocations.revoke({ kind: 'family', id: familyId, at });
  }

  private async issueInFamily(
    username: string,
    familyId: string,
    refreshToken = randomBytes(32).toString('base64url'),
  ): Promise<TokenPair> {
    const { policy } = this;
    const now = Date.now();
    await this.store.putRefreshToken({
      tokenHash: sha256(refreshToken),
      familyId,
      username,
      issuedAt: now,
      expiresAt: now + policy.refreshTtlSec * 1000,
    });
    const accessToken = await signAccessToken(this.keys.signingKey(), {
      sub: username,
      aud: policy.audience,
      iss: policy.issuer,
      sid: familyId,
      ttlSec: policy.accessTtlSec,
    });
    const pair: TokenPair = {
      tokenType: 'Bearer',
      accessToken,
      expiresIn: policy.accessTtlSec,
      refreshToken,
    };
    // Every login and refresh hands out fresh TURN credentials, so a client never holds expired ones.
    if (this.iceServers) pair.iceServers = this.iceServers.issue(username, now);
    return pair;
  }
}
