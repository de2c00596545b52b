import { spawnSync } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkNodeConfig, meshSecretOf, nodeOptionTable } from '../../supernode/config/node-options';
import { ConfigError, parseOptions } from '../../supernode/config/options';
import { freePorts } from '../../supernode/local/fleet';
import { buildSupernode } from '../../supernode/node/server';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys, waitFor } from '../helpers/node';

const SECRET = 'mesh-secret-from-a-file-0123456789abcdef';
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
  checkNodeConfig(parseOptions(nodeOptionTable, ['--jwks-file', 'jwks.json', ...argv], env));

let keys: TestKeys;
let file: (name: string, content: string) => Promise<string>;
beforeAll(async () => {
  keys = await makeTestKeys();
  file = async (name, content) => {
    const path = join(keys.dir, name);
    await writeFile(path, content, { mode: 0o600 });
    return path;
  };
});
afterAll(() => keys.cleanup());

describe('--mesh-secret-file', () => {
  it('reads the secret once, dropping the trailing newline', async () => {
    for (const [name, content] of [
      ['plain', SECRET],
      ['echo', `${SECRET}\n`],
      ['crlf', `${SECRET}\r\n`],
    ]) {
      const path = await file(name, content);
      expect(meshSecretOf(parse(['--mesh', '--mesh-secret-file', path]))).toBe(SECRET);
      expect(meshSecretOf(parse(['--mesh'], { SUPERNODE_MESH_SECRET_FILE: path }))).toBe(SECRET);
    }
    expect(meshSecretOf(parse(['--mesh', '--mesh-secret', SECRET]))).toBe(SECRET);
  });

  it.each([
    ['too short', 'short-secret\n', /must hold 32-512 non-space characters .*; it holds 12 characters$/],
    ['white space inside', `${SECRET} ${SECRET}\n`, /it holds 81 characters including white space$/],
    ['empty', '\n', /it holds 0 characters$/],
    ['too long', 'x'.repeat(513), /it holds 513 characters$/],
  ])('refuses a file that is %s, naming the file but not its content', async (name, content, message) => {
    const path = await file(`bad-${name.replace(/ /g, '-')}`, content);
    const config = parse(['--mesh', '--mesh-secret-file', path]);
    expect(() => meshSecretOf(config)).toThrow(ConfigError);
    expect(() => meshSecretOf(config)).toThrow(message);
    expect(() => meshSecretOf(config)).toThrow(/^--mesh-secret-file \(SUPERNODE_MESH_SECRET_FILE\): /);
    let error: Error | undefined;
    try {
      meshSecretOf(config);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toContain(path);
    expect(error?.message).not.toContain(content.trim() || '\n');
  });

  it('refuses a missing or unreadable file', async () => {
    const missing = join(keys.dir, 'nope');
    expect(() => meshSecretOf(parse(['--mesh', '--mesh-secret-file', missing]))).toThrow(
      `--mesh-secret-file (SUPERNODE_MESH_SECRET_FILE): cannot read ${missing} (ENOENT)`,
    );
    expect(() => meshSecretOf(parse(['--mesh', '--mesh-secret-file', keys.dir]))).toThrow(/\(EISDIR\)/);
    if (process.getuid?.() !== 0) {
      const locked = await file('locked', SECRET);
      await chmod(locked, 0o000);
      expect(() => meshSecretOf(parse(['--mesh', '--mesh-secret-file', locked]))).toThrow(/\(EACCES\)/);
    }
  });

  it('with --mesh, exactly one of --mesh-secret and --mesh-secret-file', async () => {
    const path = await file('both', SECRET);
    expect(() => parse(['--mesh', '--mesh-secret', SECRET, '--mesh-secret-file', path])).toThrow(
      'give at most one of --mesh-secret (SUPERNODE_MESH_SECRET) and --mesh-secret-file (SUPERNODE_MESH_SECRET_FILE)',
    );
    expect(() => parse(['--mesh'])).toThrow(
      '--mesh-secret (SUPERNODE_MESH_SECRET) or --mesh-secret-file (SUPERNODE_MESH_SECRET_FILE) is required with --mesh',
    );
    expect(() => parse(['--mesh-secret-file', path])).not.toThrow();
  });

  it('a bad file stops buildSupernode with a ConfigError, before anything listens', async () => {
    const path = await file('bad-build', 'short\n');
    expect(() =>
      buildSupernode({
        jwksFile: keys.jwksFile,
        logLevel: 'silent',
        mesh: true,
        meshSecretFile: path,
      }),
    ).toThrow(ConfigError);
  });

  it('a node with the secret from a file meshes with one given the same secret directly', async () => {
    const path = await file('good', `${SECRET}\n`);
    const [a, b] = await freePorts(2);
    const peers = [`a@ws://127.0.0.1:${a}`, `b@ws://127.0.0.1:${b}`];
    const nodes: RunningNode[] = [];
    try {
      nodes.push(
        await startTestNode(keys, {
          nodeId: 'a',
          mesh: true,
          meshPort: a,
          meshPeers: peers,
          meshSecret: SECRET,
        }),
      );
      nodes.push(
        await startTestNode(keys, {
          nodeId: 'b',
          mesh: true,
          meshPort: b,
          meshPeers: peers,
          meshSecretFile: path,
        }),
      );
      await waitFor(
        () => nodes.every((n) => n.node.mesh?.members().length === 2),
        5000,
        'both nodes see each other',
      );
      expect(nodes[1].node.mesh?.stats.refusedPeers).toBe(0);
    } finally {
      await Promise.all(nodes.map((n) => n.node.close()));
    }
  });

  it('the CLI exits 2 with one line that names the option, not the secret', async () => {
    const path = await file('cli-bad', 'not-long-enough-secret-value\n');
    const result = spawnSync(
      process.execPath,
      [join(__dirname, '../../supernode/bin/supernode.cjs'), 'node', '--jwks-file', keys.jwksFile, '--mesh'],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: {
          ...process.env,
          SUPERNODE_PORT: '0',
          SUPERNODE_MESH_SECRET_FILE: path,
          SUPERNODE_MESH_SECRET: '',
        },
      },
    );
    expect(result.status).toBe(2);
    const lines = result.stderr.split('\n').filter((l) => l.trim() && !l.includes('npm warn'));
    expect(lines).toEqual([
      `supernode node: --mesh-secret-file (SUPERNODE_MESH_SECRET_FILE): ${path} must hold 32-512 non-space characters (a trailing newline is ignored); it holds 28 characters`,
    ]);
    expect(result.stdout + result.stderr).not.toContain('not-long-enough-secret-value');
  });
});
