import dgram from 'node:dgram';
import { createServer, isIP } from 'node:net';
import { localOptionTable } from '../config/local-options';
import { flagOf } from '../config/options';

/** One port the local tier gives to one of its components, and the option that moves it. */
export interface PortUse {
  port: number;
  protocol: 'tcp' | 'udp';
  /** What listens there, e.g. "the mesh of supernode local-1". */
  what: string;
  option: keyof typeof localOptionTable;
}

/** `--base-port or SUPERNODE_LOCAL_BASE_PORT`: how the user moves the port. */
export function optionText(option: PortUse['option']): string {
  return `${flagOf(option)} or ${localOptionTable[option].env}`;
}

export function portText(use: PortUse): string {
  return `${use.protocol.toUpperCase()} ${use.port} (${use.what}; ${optionText(use.option)})`;
}

/**
 * Why `use` cannot be bound on `host` right now (e.g. "is already in use"), or undefined if it can.
 * Checked before anything starts: a component that loses its port would otherwise die while another
 * process on that port (often a tier already running) answers the readiness check in its place.
 */
export function portProblem(host: string, use: PortUse): Promise<string | undefined> {
  const explain = (err: NodeJS.ErrnoException): string =>
    err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${err.code ?? err.message})`;
  return new Promise((resolve) => {
    if (use.protocol === 'tcp') {
      const server = createServer();
      server.once('error', (err) => resolve(explain(err)));
      server.listen({ port: use.port, host }, () => server.close(() => resolve(undefined)));
    } else {
      const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
      socket.once('error', (err) => {
        resolve(explain(err));
        // A socket whose bind failed may already be closed.
        try {
          socket.close();
        } catch {
          // nothing to release
        }
      });
      // exclusive, as the STUN server binds: no sharing through the cluster module.
      socket.bind({ port: use.port, address: host, exclusive: true }, () =>
        socket.close(() => resolve(undefined)),
      );
    }
  });
}

/** Two components given the same port: the second could never start, whatever else is running. */
export function clashes(uses: PortUse[]): string[] {
  const seen = new Map<string, PortUse>();
  const found: string[] = [];
  for (const use of uses) {
    const key = `${use.protocol}:${use.port}`;
    const first = seen.get(key);
    if (first)
      found.push(
        `${use.protocol.toUpperCase()} ${use.port} is given to both ${first.what} (${optionText(first.option)}) and ${use.what} (${optionText(use.option)})`,
      );
    else seen.set(key, use);
  }
  return found;
}
