import { join } from 'node:path';
import { helpText, type OptionTable, type OptionValues, parseOptions } from '../config/options';
import { AuthClient, AuthError } from './auth-client';
import { FileCredentialStore } from './credentials';
import { ClientError, SupernodeClient } from './resilient-client';
import { SessionError } from './session';

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
    help: 'Supernode to connect to (ignored with --nodes).',
  },
  nodes: {
    kind: 'list',
    env: 'SUPERNODE_NODE_URLS',
    default: [],
    maxItems: 64,
    help: "connect: supernodes to try in turn when one fails or drains (or the load balancer's URL).",
  },
  startJitterMs: {
    kind: 'int',
    env: 'SUPERNODE_START_JITTER_MS',
    default: 0,
    min: 0,
    max: 600_000,
    help: 'connect: wait a random time up to this before connecting (many clients starting at once).',
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
} as const satisfies OptionTable;

const USAGE = `Usage: supernode client <signup|login|connect> [options]

  signup    create the account (--username, --password)
  login     log in and cache the tokens (--username, --password)
  connect   connect with the cached token (refreshing it if expired; with --password, logging in
            if nothing usable is cached), optionally --lookup a user or --send --message to one, then
            print what arrives; reconnects (another node if need be) until it stops`;

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
    await connect(
      new SupernodeClient({
        username,
        nodes: options.nodes.length > 0 ? options.nodes : [options.node],
        auth,
        credentials,
        password: () => options.password,
      }),
      options,
    );
  } catch (err) {
    if (err instanceof AuthError || err instanceof SessionError || err instanceof ClientError) {
      console.error(`supernode client ${action}: ${err.code}: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

/** `connect`: the resilient client, reporting what it does on the console. */
async function connect(client: SupernodeClient, options: OptionValues<typeof clientOptions>): Promise<void> {
  client.on('connected', (e) =>
    console.log(`connected to ${e.node} (${e.url})${e.resumed ? ' with the cached token' : ''}`),
  );
  client.on('disconnected', (e) => console.log(`session on ${e.node} closed (${e.code} ${e.reason})`));
  client.on('retry_scheduled', (e) => console.log(`${e.step} in ${e.delayMs} ms (${e.reason})`));
  client.on('token_refreshed', () => console.log('access token refreshed'));
  client.on('rehomed', (e) => console.log(`moved from ${e.from.node} to ${e.to.node}`));
  client.on('message', (m) => console.log(`message from ${m.from}: ${m.payload.toString()}`));
  client.on('credentials_required', ({ reason }) => {
    console.error(
      `supernode client connect: ${reason}: run "supernode client login" first, or pass --password`,
    );
    process.exit(1);
  });
  client.start({ startJitterMs: options.startJitterMs });
  await client.whenConnected();
  if (options.lookup) console.log(JSON.stringify(await client.lookup(options.lookup)));
  if (options.send) {
    const ack = await client.sendWithAck(options.send, Buffer.from(options.message));
    console.log(`sent to ${options.send}: delivered to ${ack.delivered} session(s)`);
  }
  if (options.waitMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, options.waitMs));
    await client.stop();
  } else {
    console.log('waiting for messages; Ctrl-C to stop');
    process.once('SIGINT', () => void client.stop().then(() => process.exit(0)));
  }
}
