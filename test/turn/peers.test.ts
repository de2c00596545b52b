import { PeerPolicy, parseCidr } from '../../supernode/turn/peers';

describe('PeerPolicy', () => {
  const policy = new PeerPolicy();

  it.each([
    '169.254.169.254', // cloud metadata service
    '169.254.0.1',
    '127.0.0.1',
    '127.255.255.254',
    '10.0.0.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '100.64.0.1',
    '100.127.255.254',
    '0.0.0.0',
    '0.1.2.3',
    '224.0.0.251',
    '239.255.255.250',
    '255.255.255.255',
    '240.0.0.1',
    '::',
    '::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'fec0::1',
    'ff02::1',
    '::ffff:169.254.169.254', // IPv4-mapped
    '::ffff:10.0.0.1',
    '::127.0.0.1', // IPv4-compatible
    '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254
    '2002:a9fe:a9fe::1', // 6to4 of 169.254.169.254
  ])('refuses %s by default', (address) => {
    expect(policy.allows(address)).toBe(false);
  });

  it.each([
    '8.8.8.8',
    '198.51.100.7',
    '172.15.255.255',
    '172.32.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '169.253.255.255',
    '223.255.255.255',
    '2001:db8::1',
    '2606:4700::1111',
    '::ffff:8.8.8.8',
  ])('allows the public address %s', (address) => {
    expect(policy.allows(address)).toBe(true);
  });

  it.each(['', 'localhost', '1.2.3', '010.0.0.1', '1::2::3'])('refuses the non-address %p', (address) => {
    expect(policy.allows(address)).toBe(false);
  });

  it('lets allowPeers open refused ranges (tests, lab networks), mapped forms included', () => {
    const open = new PeerPolicy(['127.0.0.1', '10.1.0.0/16', 'fd00::/8']);
    expect(open.allows('127.0.0.1')).toBe(true);
    expect(open.allows('::ffff:127.0.0.1')).toBe(true);
    expect(open.allows('127.0.0.2')).toBe(false);
    expect(open.allows('10.1.200.3')).toBe(true);
    expect(open.allows('10.2.0.1')).toBe(false);
    expect(open.allows('fd00::5')).toBe(true);
    expect(open.allows('169.254.169.254')).toBe(false);
  });
});

describe('parseCidr', () => {
  it('reads addresses with and without a prefix', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ bytes: Buffer.from([10, 0, 0, 0]), prefix: 8 });
    expect(parseCidr('192.0.2.1').prefix).toBe(32);
    expect(parseCidr('2001:db8::/32').prefix).toBe(32);
    expect(parseCidr('::1').prefix).toBe(128);
  });

  it.each(['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', 'example.com/8', '1.2.3/24'])(
    'refuses %p',
    (text) => {
      expect(() => parseCidr(text)).toThrow(RangeError);
    },
  );
});
