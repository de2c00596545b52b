import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configurationMarkdown } from '../../supernode/config/docs';
import { checkNodeConfig, nodeOptionTable } from '../../supernode/config/node-options';
import { ConfigError, helpText, parseOptions, resolveOptions } from '../../supernode/config/options';

const root = join(__dirname, '../..');
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseOptions(nodeOptionTable, argv, env);

describe('node options', () => {
  it('takes the flag over the variable over the default', () => {
    expect(parse([]).port).toBe(7001);
    expect(parse([], { SUPERNODE_PORT: '7100' }).port).toBe(7100);
    expect(parse(['--port', '7200'], { SUPERNODE_PORT: '7100' }).port).toBe(7200);
    expect(parse(['--max-sessions=50']).maxSessions).toBe(50);
  });

  it('reads booleans, lists and enums', () => {
    expect(parse(['--no-stun']).stun).toBe(false);
    expect(parse([], { SUPERNODE_STUN: 'false' }).stun).toBe(false);
    expect(parse(['--cloudwatch']).cloudwatch).toBe(true);
    expect(parse(['--alternatives', 'ws://a:1, wss://b:2']).alternatives).toEqual(['ws://a:1', 'wss://b:2']);
    expect(parse([], { SUPERNODE_LOG_LEVEL: 'debug' }).logLevel).toBe('debug');
  });

  it.each([
    [['--port', 'abc'], /--port \(SUPERNODE_PORT\) must be an integer from 0 to 65535; got "abc"/],
    [['--port', '70000'], /--port .* must be an integer from 0 to 65535/],
    [['--port', '1.5'], /--port .* must be an integer/],
    [['--log-level', 'loud'], /--log-level \(SUPERNODE_LOG_LEVEL\) must be one of fatal, error, warn/],
    [['--alternatives', 'http://x'], /--alternatives .* \(a ws:\/\/ or wss:\/\/ URL\)/],
    [['--host', 'a b'], /--host .* must be a hostname or IP address/],
    [['--bogus', '1'], /Unknown option '--bogus'/],
  ])('rejects %j with a message naming the option and what is allowed', (argv, message) => {
    expect(() => parse(argv)).toThrow(ConfigError);
    expect(() => parse(argv)).toThrow(message);
  });

  it('says where a bad value came from', () => {
    expect(() => parse([], { SUPERNODE_MAX_SESSIONS: '0' })).toThrow(
      /from environment variable SUPERNODE_MAX_SESSIONS/,
    );
  });

  it('checks rules across options', () => {
    const exactlyOne =
      'give exactly one of --jwks-url (SUPERNODE_JWKS_URL) and --jwks-file (SUPERNODE_JWKS_FILE)';
    expect(() => checkNodeConfig(parse([]))).toThrow(exactlyOne);
    expect(() => checkNodeConfig(parse(['--jwks-file', 'a', '--jwks-url', 'http://x']))).toThrow(exactlyOne);
    expect(() => checkNodeConfig(parse(['--jwks-file', 'a', '--cloudwatch']))).toThrow(
      /--auto-scaling-group/,
    );
  });

  it('states one default per option in --help, in words where the value depends on others', () => {
    const text = helpText('Usage: supernode node [options]', nodeOptionTable);
    const blocks = text
      .split(/\n(?= {2}--)/)
      .filter((block) => block.startsWith('  --') && !block.startsWith('  --help'));
    expect(blocks).toHaveLength(Object.keys(nodeOptionTable).length);
    for (const block of blocks) expect(block.match(/Default:/g)).toHaveLength(1);
    const nodeId = blocks.find((block) => block.startsWith('  --node-id '));
    expect(nodeId).toContain('Default: <hostname>-<port>.');
    for (const flag of ['--public-url', '--s3-region', '--stun-host', '--mesh-host']) {
      const block = blocks.find((b) => b.startsWith(`  ${flag} `));
      expect(block).not.toContain('Default: none.');
    }
  });

  it('applies the same checks to options given in code', () => {
    expect(resolveOptions(nodeOptionTable, { port: 9000 }).port).toBe(9000);
    expect(() => resolveOptions(nodeOptionTable, { maxSessions: -1 })).toThrow(/--max-sessions/);
    expect(() => resolveOptions(nodeOptionTable, { port: 80.5 })).toThrow(/--port/);
  });

  it('documents every option in --help', () => {
    const help = helpText('usage', nodeOptionTable);
    for (const spec of Object.values(nodeOptionTable)) expect(help).toContain(spec.env);
  });

  it('docs/configuration.md is the generated page (run `npm run docs:config` after changing options)', () => {
    expect(readFileSync(join(root, 'docs/configuration.md'), 'utf8')).toBe(configurationMarkdown());
  });
});

describe('the CLI', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [join(root, 'supernode/bin/supernode.cjs'), ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env: { ...process.env, SUPERNODE_PORT: '' },
    });

  it('exits 2 with one line naming the bad option', () => {
    const result = run(['node', '--port', 'abc', '--jwks-file', 'x']);
    expect(result.status).toBe(2);
    const lines = result.stderr.split('\n').filter((l) => l.trim() && !l.includes('npm warn'));
    expect(lines).toEqual([
      'supernode node: --port (SUPERNODE_PORT) must be an integer from 0 to 65535; got "abc" from the command line',
    ]);
  });

  it('prints help for the commands and for node', () => {
    expect(run(['--help']).stdout).toMatch(/Commands:\n\s+node/);
    const nodeHelp = run(['node', '--help']);
    expect(nodeHelp.status).toBe(0);
    expect(nodeHelp.stdout).toContain('--max-sessions <value>   [SUPERNODE_MAX_SESSIONS]');
  });

  it('rejects an unknown command', () => {
    const result = run(['fly']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('unknown command "fly"');
  });
});
