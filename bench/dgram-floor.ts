/**
 * What Node's dgram alone costs per relayed packet: a forwarder that does nothing but what a TURN
 * relay must (a 4-byte ChannelData header off one way, on the other), in its own process, loaded by
 * 4 client sockets sending 100-byte packets in bursts to a UDP echo peer through it. The floor under
 * any TURN relay written on dgram's one-send-per-packet API, for comparison with bench/turn.ts's
 * "relayed packets per server CPU-second" (counted the same way: both directions).
 *
 *   npx tsx bench/dgram-floor.ts
 */
import { fork } from 'node:child_process';
import dgram from 'node:dgram';

const SECONDS = 5;

function forwarder(peerPort: number): void {
  const fromClients = dgram.createSocket('udp4');
  const toPeer = dgram.createSocket('udp4');
  let client: dgram.RemoteInfo | undefined;
  let relayed = 0;
  fromClients.on('message', (msg, remote) => {
    client = remote;
    relayed++;
    toPeer.send(msg.subarray(4), peerPort, '127.0.0.1');
  });
  toPeer.on('message', (msg) => {
    if (!client) return;
    relayed++;
    const header = Buffer.allocUnsafe(4);
    header.writeUInt16BE(0x4000, 0);
    header.writeUInt16BE(msg.length, 2);
    fromClients.send([header, msg], client.port, client.address);
  });
  fromClients.bind(0, '127.0.0.1', () =>
    toPeer.bind(0, '127.0.0.1', () => process.send?.({ port: fromClients.address().port })),
  );
  process.on('message', () => {
    const cpu = process.cpuUsage();
    process.send?.({ relayed, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
  });
}

function load(): void {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg, remote) => echo.send(msg, remote.port, remote.address));
  echo.bind(0, '127.0.0.1', () => {
    const child = fork(__filename, ['--forwarder', String(echo.address().port)], {
      execArgv: ['--require', 'tsx/cjs'],
    });
    child.once('message', ({ port }: { port: number }) => {
      const clients = Array.from({ length: 4 }, () => {
        const socket = dgram.createSocket('udp4');
        socket.bind(0, '127.0.0.1');
        socket.on('message', () => {});
        return socket;
      });
      const packet = Buffer.alloc(104);
      packet.writeUInt16BE(0x4000, 0);
      packet.writeUInt16BE(100, 2);
      const timer = setInterval(() => {
        for (let burst = 0; burst < 10; burst++) for (const c of clients) c.send(packet, port, '127.0.0.1');
      }, 1);
      setTimeout(() => {
        clearInterval(timer);
        child.send('report');
        child.once('message', (r: { relayed: number; cpuSeconds: number }) => {
          console.log(
            `dgram forwarder: ${r.relayed} packets relayed (both ways) in ${SECONDS} s using ${r.cpuSeconds.toFixed(2)} s of CPU: ${Math.round(r.relayed / r.cpuSeconds)} per CPU-second (start-up included)`,
          );
          console.log('command: npx tsx bench/dgram-floor.ts');
          child.kill();
          process.exit(0);
        });
      }, SECONDS * 1000);
    });
  });
}

if (process.argv[2] === '--forwarder') forwarder(Number(process.argv[3]));
else load();
