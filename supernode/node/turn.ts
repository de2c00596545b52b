/**
 * The node's TURN server (docs/turn.md): a TurnServer built from the node's options, the secret file it
 * keeps re-reading, and the bind errors of its listeners turned into ConfigErrors naming the option.
 */
import { readFileSync } from 'node:fs';
import {
  type NodeConfig,
  nodeOptionTable,
  TURN_SECRET_FILE_OPTION,
  turnSecretsOf,
} from '../config/node-options';
import { ConfigError, flagOf } from '../config/options';
import { TurnSecretFile } from '../config/turn-secrets';
import type { Logger } from '../shared/log';
import type { TurnErrorCode } from '../turn/codec';
import type { TurnDropReason } from '../turn/options';
import { type TurnOutcome, TurnServer, type TurnServerAddress } from '../turn/server';

export interface NodeTurn {
  readonly server: TurnServer;
  /** Set with --turn-secret-file: the re-reading of the file. */
  readonly secretFile: TurnSecretFile | undefined;
  start(): Promise<TurnServerAddress>;
  stop(): Promise<void>;
}

/** Builds (does not start) the TURN server of a node with --turn; reads the secrets and TLS files now. */
export function buildNodeTurn(
  config: NodeConfig,
  log: Logger,
  onOutcome: (outcome: TurnOutcome, detail?: TurnErrorCode | TurnDropReason) => void,
): NodeTurn {
  const secrets = turnSecretsOf(config);
  const host = config.stunHost ?? config.host;
  const tls =
    config.turnTlsCertFile && config.turnTlsKeyFile
      ? {
          tlsCert: readPem(config.turnTlsCertFile, 'turnTlsCertFile'),
          tlsKey: readPem(config.turnTlsKeyFile, 'turnTlsKeyFile'),
          tlsPort: config.turnTlsPort,
        }
      : {};
  let server: TurnServer;
  try {
    server = new TurnServer({
      host,
      port: config.stunPort,
      realm: config.turnRealm,
      secrets,
      externalAddress: config.turnExternalAddress,
      minPort: config.turnMinPort,
      maxPort: config.turnMaxPort,
      maxAllocations: config.turnMaxAllocations,
      maxAllocationsPerUser: config.turnMaxAllocationsPerUser,
      allocationBandwidth: config.turnAllocationBytesPerSecond,
      userBandwidth: config.turnUserBytesPerSecond,
      allowPeers: config.turnAllowPeers,
      relayEngine: config.turnRelayEngine,
      software: 'supernode',
      log,
      onOutcome,
      ...tls,
    });
  } catch (err) {
    // What the option checks cannot see (a CIDR that does not parse, families that differ) fails here.
    throw new ConfigError(`--turn: ${(err as Error).message}`);
  }
  const secretFile = config.turnSecretFile
    ? new TurnSecretFile(
        config.turnSecretFile,
        TURN_SECRET_FILE_OPTION,
        config.turnSecretRefreshMs,
        (next) => {
          server.updateSecrets(next);
          log.info({ secrets: next.length }, 'TURN secrets reloaded');
        },
        (err) =>
          log.warn({ err: err.message }, 'TURN secret file not reloaded; keeping the last good secrets'),
        secrets,
      )
    : undefined;

  return {
    server,
    secretFile,
    async start() {
      try {
        const address = await server.start();
        secretFile?.start();
        return address;
      } catch (err) {
        throw explainBindError(err, config, host);
      }
    },
    async stop() {
      secretFile?.stop();
      await server.close();
    },
  };
}

function readPem(file: string, option: 'turnTlsCertFile' | 'turnTlsKeyFile'): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(
      `${flagOf(option)} (${nodeOptionTable[option].env}): cannot read ${file} (${code})`,
    );
  }
}

/** A port in use is a configuration problem: say which option moves it, in one line (as for STUN). */
function explainBindError(err: unknown, config: NodeConfig, host: string): unknown {
  const e = err as NodeJS.ErrnoException & { port?: number };
  if (e.code !== 'EADDRINUSE' && e.code !== 'EACCES' && e.code !== 'EADDRNOTAVAIL') return err;
  const tls = Boolean(config.turnTlsCertFile) && e.syscall === 'listen' && e.port === config.turnTlsPort;
  const option = tls ? 'turnTlsPort' : 'stunPort';
  const what = tls ? `TCP ${host}:${config.turnTlsPort}` : `UDP/TCP ${host}:${config.stunPort}`;
  const problem =
    e.code === 'EADDRINUSE' ? 'is in use' : e.code === 'EACCES' ? 'is not allowed' : 'is not local';
  return new ConfigError(
    `TURN: ${what} ${problem} (${e.code}); choose another with ${flagOf(option)} (${nodeOptionTable[option].env})`,
  );
}
