import { join } from 'node:path';
import { helpText, parseOptions } from '../config/options';
import { AuthClient, AuthError, type Tokens } from './auth-client';
import { FileCredentialStore } from './credentials';
import { type DeliveredMessage, SessionError, SupernodeSession } from './session';

const clientOptions = {
  auth: {
    kind: 'string',
    env: 'SUPERNODE_AUTH_URL',
    default: 'http://127.0.0.1:8080',
    help: 'Auth service URL.',
  },
  node: {
    kind: 'string',
    env: 'SUPERNODE_NODE_URL',
    default: 'ws://127.0.0.1:7001',
    help: 'Supernode to connect to.',
  },
  username: { kind: 'string', env: 'SUPERNODE_USERNAME', help: 'Your username (required).' },
  password: { kind: 'string', env: 'SUPERNODE_PASSWORD', help: 'Your password (signup, login).' },
  lookup: { kind: 'string', env: 'SUPERNODE_LOOKUP', help: 'connect: look this user up after connecting.' },
  send: { kind: 'string', env: 'SUPERNODE_SEND_TO', help: 'connect: send --message to this user.' },
  message: { kind: 'string', env: 'SUPERNODE_MESSAGE', default: 'hello', help: 'connect: the text to send.' },
  waitMs: {
    kind: 'int',
    env: 'SUPERNODE_WAIT_MS',
    default: 0,
    min: 0,
    max: 86_400_000,
    help: 'connect: stay connected this long printing what arrives (0: until Ctrl-C).',
  },
  dataDir: {
    kind: 'string',
    env: 'SUPERNODE_DATA_DIR',
    default: '.data',
    help: 'Where the credential cache lives (<dir>/client/).',
  },
} as const;

const USAGE = `Usage: supernode client <signup|login|connect> [options]

  signup    create the account (--username, --password)
  login     log in and cache the tokens (--username, --password)
  connect   connect with the cached token (refreshing it if expired), optionally --lookup a user
            or --send --message to one, then print what arrives`;

/** A way to try the tier by hand; applications embed the SDK classes instead. */
export async function runClient(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (!action || action === '--help' || rest.includes('--help')) {
    console.log(helpText(USAGE, clientOptions));
    return;
  }
  const options = parseOptions(clientOptions, rest);
  if (!options.username) throw new Error('--username is required');
  const auth = new AuthClient(options.auth);
  const credentials = new FileCredentialStore(join(options.dataDir, 'client'));
  const username = options.username;
  try {
    if (action === 'signup' || action === 'login') {
      if (!options.password) throw new Error('--password is required');
      if (action === 'signup') {
        await auth.signup(username, options.password);
        console.log(`account ${username} created`);
      }
      await credentials.save(username, await auth.login(username, options.password));
      console.log(`logged in as ${username}; tokens cached under ${join(options.dataDir, 'client')}`);
      return;
    }
    if (action !== 'connect') throw new Error(`unknown client action "${action.slice(0, 20)}"`);
    let tokens: Tokens | undefined = await credentials.load(username);
    if (!tokens) throw new Error(`no cached credentials for ${username}: run "supernode client login" first`);
    if (tokens.expiresAt <= Date.now() + 5000) {
      tokens = await auth.refresh(tokens.refreshToken);
      await credentials.save(username, tokens);
    }
    const session = await SupernodeSession.connect({ url: options.node, token: tokens.accessToken });
    console.log(`connected to ${session.welcome.node} as ${session.user}`);
    session.on('message', (m: DeliveredMessage) =>
      console.log(`message from ${m.from}: ${m.payload.toString()}`),
    );
    session.on('drain', () => console.log('the node is draining: reconnect to another node'));
    session.on('close', (code: number) => console.log(`session closed (${code})`));
    if (options.lookup) console.log(JSON.stringify(await session.lookup(options.lookup)));
    if (options.send) {
      const ack = await session.sendWithAck(options.send, Buffer.from(options.message));
      console.log(`sent to ${options.send}: delivered to ${ack.delivered} session(s)`);
    }
    if (options.waitMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, options.waitMs));
      await session.close();
    } else {
      console.log('waiting for messages; Ctrl-C to stop');
      process.once('SIGINT', () => void session.close().then(() => process.exit(0)));
    }
  } catch (err) {
    if (err instanceof AuthError || err instanceof SessionError) {
      console.error(`supernode client ${action}: ${err.code}: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}
