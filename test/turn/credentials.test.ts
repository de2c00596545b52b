import {
  iceServers,
  longTermKey,
  NonceIssuer,
  parseTurnUsername,
  turnCredentials,
  turnPassword,
} from '../../supernode/turn/credentials';

describe('turnCredentials (the REST API scheme of coturn use-auth-secret)', () => {
  it('makes username expiry:userId and password base64(HMAC-SHA1(secret, username))', () => {
    // Password computed independently: printf %s '1700000000:alice' | openssl dgst -sha1 -hmac north -binary | base64
    expect(turnCredentials('north', 'alice', 300, 1_699_999_700_000)).toEqual({
      username: '1700000000:alice',
      credential: 'Cd/49soE35ICqcJF/bCTn8Z4OyE=',
    });
    expect(turnPassword('north', '1700000000:alice')).toBe('Cd/49soE35ICqcJF/bCTn8Z4OyE=');
  });

  it('counts the expiry from now in whole seconds', () => {
    const { username } = turnCredentials('s', 'u', 86_400, 1_000_999);
    expect(username).toBe(`${1000 + 86_400}:u`);
  });

  it.each([
    ['an empty secret', () => turnCredentials('', 'u', 1)],
    ['an empty user id', () => turnCredentials('s', '', 1)],
    ['a zero ttl', () => turnCredentials('s', 'u', 0)],
    ['a fractional ttl', () => turnCredentials('s', 'u', 1.5)],
  ])('refuses %s', (_name, make) => {
    expect(make).toThrow(RangeError);
  });

  it('parses usernames back, user ids with colons included', () => {
    expect(parseTurnUsername('1700000000:alice')).toEqual({ expirySec: 1_700_000_000, userId: 'alice' });
    expect(parseTurnUsername('1:a:b')).toEqual({ expirySec: 1, userId: 'a:b' });
    for (const bad of ['alice', '1700000000', ':alice', '1700000000:', 'x1:alice', '1234567890123:a']) {
      expect(parseTurnUsername(bad)).toBeNull();
    }
  });
});

describe('iceServers', () => {
  const credentials = { username: '1:u', credential: 'pw' };

  it('lists STUN, then TURN over UDP and TCP, for RTCPeerConnection', () => {
    expect(iceServers({ host: 'turn.example.com', credentials })).toEqual([
      { urls: ['stun:turn.example.com:3478'] },
      {
        urls: ['turn:turn.example.com:3478?transport=udp', 'turn:turn.example.com:3478?transport=tcp'],
        username: '1:u',
        credential: 'pw',
      },
    ]);
  });

  it('adds turns: when a TLS port is given, and brackets IPv6 hosts', () => {
    const servers = iceServers({
      host: '2001:db8::1',
      credentials,
      port: 3479,
      tlsPort: 5349,
      stunPort: 3478,
    });
    expect(servers[0].urls).toEqual(['stun:[2001:db8::1]:3478']);
    expect(servers[1].urls).toEqual([
      'turn:[2001:db8::1]:3479?transport=udp',
      'turn:[2001:db8::1]:3479?transport=tcp',
      'turns:[2001:db8::1]:5349?transport=tcp',
    ]);
  });
});

describe('long-term key', () => {
  it('is MD5 or SHA-256 of username:realm:password', () => {
    expect(longTermKey('user', 'realm', 'pass').toString('hex')).toBe('8493fbc53ba582fb4c044c456bdc40eb');
    expect(longTermKey('user', 'realm', 'pass', 'sha256')).toHaveLength(32);
  });
});

describe('NonceIssuer', () => {
  it('accepts its nonce from the same IP within the lifetime only', () => {
    let now = 1_700_000_000_000;
    const nonces = new NonceIssuer(600, () => now);
    const nonce = nonces.issue('192.0.2.1');
    expect(nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(nonces.check(nonce, '192.0.2.1')).toBe(true);
    expect(nonces.check(nonce, '192.0.2.2')).toBe(false);
    now += 599_000;
    expect(nonces.check(nonce, '192.0.2.1')).toBe(true);
    now += 1_000;
    expect(nonces.check(nonce, '192.0.2.1')).toBe(false);
  });

  it('refuses tampered, foreign, future and malformed nonces', () => {
    const now = 1_700_000_000_000;
    const nonces = new NonceIssuer(600, () => now);
    const nonce = nonces.issue('192.0.2.1');
    const tampered = nonce.slice(0, -1) + (nonce.endsWith('0') ? '1' : '0');
    const foreign = new NonceIssuer(600, () => now).issue('192.0.2.1');
    const future = new NonceIssuer(600, () => now + 10_000, Buffer.alloc(32)).issue('192.0.2.1');
    for (const bad of [tampered, foreign, nonce.toUpperCase(), nonce.slice(1), '', 'x'.repeat(32)]) {
      expect(nonces.check(bad, '192.0.2.1')).toBe(false);
    }
    expect(new NonceIssuer(600, () => now, Buffer.alloc(32)).check(future, '192.0.2.1')).toBe(false);
  });
});
