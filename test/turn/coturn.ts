import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Peer } from './helpers';

/**
 * coturn's own test clients (Debian package `coturn`) as independent implementations to talk to.
 * Missing tools fail the test with the command that installs them: an interop test that quietly
 * passes without its counterpart proves nothing.
 */

export function coturnTool(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not on PATH: install coturn's test clients with \`apt-get install -y coturn\``);
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  command: string;
}

const running = new Set<ChildProcess>();

/** Runs a tool to completion, killed (SIGKILL) after `timeoutMs`; stdout and stderr together. */
export function run(tool: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      const command = [tool, ...args].join(' ');
      if (process.env.TURN_INTEROP_LOG) process.stdout.write(`$ ${command}\n${output}\n`);
      resolve({ code, signal, output, command });
    });
  });
}

/** Kills whatever run() started and is still running (afterEach, so a failed test leaves nothing). */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** turnutils_uclient's final totals: messages sent and echoed back, and lost. */
export function uclientTotals(output: string): { sent: number; received: number; lost: number } | null {
  const totals = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(output);
  const lost = /Total lost packets (\d+)/.exec(output);
  if (!totals || !lost) return null;
  return { sent: Number(totals[1]), received: Number(totals[2]), lost: Number(lost[1]) };
}

/**
 * Two echo peers on consecutive ports, as turnutils_uclient expects (it sends RTP to port P and RTCP
 * to P+1), below the ephemeral range so no one else's bind(0) takes them.
 */
export async function echoPeerPair(): Promise<[Peer, Peer]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 20_000 + 2 * Math.floor(Math.random() * 6000);
    let first: Peer | undefined;
    try {
      first = await Peer.open({ port, echo: true });
      return [first, await Peer.open({ port: port + 1, echo: true })];
    } catch {
      await first?.close();
    }
  }
  throw new Error('no two consecutive free UDP ports for the echo peers');
}
