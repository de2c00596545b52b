import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type FleetNode, freePorts } from '../../supernode/local/fleet';
import { makeTestKeys, type TestKeys } from '../helpers/node';

const cli = join(__dirname, '../../supernode/bin/supernode.cjs');

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

let keys: TestKeys;
const children: Array<ReturnType<typeof spawn>> = [];
beforeAll(async () => {
  keys = await makeTestKeys();
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await keys.cleanup();
});

async function startNode(extraEnv: Record<string, string>): Promise<FleetNode> {
  const [port] = await freePorts(1);
  const child = spawn(process.execPath, [cli, 'node'], {
    stdio: 'ignore',
    env: {
      ...process.env,
      SUPERNODE_PORT: String(port),
      SUPERNODE_STUN: 'false',
      SUPERNODE_JWKS_FILE: keys.jwksFile,
      SUPERNODE_LOG_LEVEL: 'error',
      ...extraEnv,
    },
  });
  children.push(child);
  return { id: `soak-${port}`, port, meshPort: 0, url: `ws://127.0.0.1:${port}`, child };
}

describe('supernode soak (the release gate user data runs before cfn-signal)', () => {
  it('passes a node that stays ready through the soak', async () => {
    const node = await startNode({});
    const result = await run([
      'soak',
      '--url',
      `http://127.0.0.1:${node.port}/readyz`,
      '--soak-sec',
      '2',
      '--interval-ms',
      '200',
    ]);
    expect(result.code).toBe(0);
    expect(result.out).toContain('soak passed');
  });

  it('refuses a build that crashes a while after start', async () => {
    const node = await startNode({ SUPERNODE_FAULT_CRASH_AFTER_MS: '2500' });
    const result = await run([
      'soak',
      '--url',
      `http://127.0.0.1:${node.port}/readyz`,
      '--soak-sec',
      '6',
      '--interval-ms',
      '200',
    ]);
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/soak failed: .* did not answer .* during the soak/);
    expect(node.child?.exitCode).toBe(70);
  });

  it('refuses a build that never becomes ready', async () => {
    const [port] = await freePorts(1);
    const result = await run([
      'soak',
      '--url',
      `http://127.0.0.1:${port}/readyz`,
      '--start-timeout-sec',
      '1',
      '--interval-ms',
      '200',
    ]);
    expect(result.code).toBe(1);
    expect(result.out).toContain('not ready within 1 s');
  });
});
