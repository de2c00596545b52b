import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey, publicJwks, type SigningKey, signAccessToken } from '../auth/signing';
import { helpText, parseOptions } from '../config/options';
import { USER_ID_REGEX } from '../protocol/messages';

/**
 * The local tier's signing key, kept under the data directory so tokens survive a restart. Only for
 * running on one machine; in AWS the auth service's keys live in Secrets Manager.
 */
export interface DevKeyFiles {
  key: SigningKey;
  jwksFile: string;
}

export async function loadOrCreateDevKey(dataDir: string): Promise<DevKeyFiles> {
  const dir = join(dataDir, 'dev-keys');
  const keyFile = join(dir, 'signing-key.json');
  const jwksFile = join(dir, 'jwks.json');
  await mkdir(dir, { recursive: true });
  let key: SigningKey;
  try {
    key = JSON.parse(await readFile(keyFile, 'utf8')) as SigningKey;
  } catch {
    key = await generateSigningKey();
    await writeFile(keyFile, JSON.stringify(key), { mode: 0o600 });
    await chmod(keyFile, 0o600);
  }
  await writeFile(jwksFile, `${JSON.stringify(publicJwks([key]), null, 2)}\n`);
  return { key, jwksFile };
}

const devTokenOptions = {
  user: {
    kind: 'string',
    env: 'SUPERNODE_DEV_USER',
    pattern: { regex: USER_ID_REGEX, description: '1-128 printable ASCII characters without spaces' },
    help: 'User id to put in the token subject (required).',
  },
  ttlSec: {
    kind: 'int',
    env: 'SUPERNODE_DEV_TTL_SEC',
    default: 3600,
    min: 1,
    max: 86_400,
    help: 'Token lifetime.',
  },
  audience: { kind: 'string', env: 'SUPERNODE_AUDIENCE', default: 'supernode', help: 'Token audience.' },
  dataDir: {
    kind: 'string',
    env: 'SUPERNODE_DATA_DIR',
    default: '.data',
    help: 'Where the local tier keeps its data.',
  },
} as const;

export async function runDevToken(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(
      helpText(
        'Usage: supernode dev-token --user <id>\n\nPrints a token from the local dev key.',
        devTokenOptions,
      ),
    );
    return;
  }
  const options = parseOptions(devTokenOptions, argv);
  if (!options.user) {
    console.error('supernode dev-token: --user (SUPERNODE_DEV_USER) is required');
    process.exit(2);
  }
  const { key } = await loadOrCreateDevKey(options.dataDir);
  console.log(
    await signAccessToken(key, { sub: options.user, aud: options.audience, ttlSec: options.ttlSec }),
  );
}
