/** The drills' CPU accounting against processes whose use is known: one spinning, one asleep. */
import { type ChildProcess, spawn } from 'node:child_process';
import { measureCpu } from '../../supernode/drill/cpu';

function node(code: string): ChildProcess {
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

test('a spinning thread counts as the CPU it reports using itself, a sleeping process as none', async () => {
  // The spinner's busy thread is a worker: its main thread stays nearly idle. It reports its own CPU
  // (process.cpuUsage, every thread) between 'start' and 'stop', a reading independent of /proc.
  const spinner = spawn(
    process.execPath,
    [
      '-e',
      `new (require('node:worker_threads').Worker)('for (;;) {}', { eval: true });
       let from;
       process.on('message', (m) => {
         if (m === 'start') from = process.cpuUsage();
         else { const d = process.cpuUsage(from); process.send((d.user + d.system) / 1e6); }
       });`,
    ],
    { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] },
  );
  const sleeper = node('setTimeout(() => {}, 60000);');
  try {
    await new Promise((r) => setTimeout(r, 300));
    spinner.send('start');
    const cpu = measureCpu(
      () => ({ spinning: [spinner.pid as number], sleeping: [sleeper.pid as number] }),
      () => spinner.pid,
    );
    await new Promise((r) => setTimeout(r, 1500));
    const shares = cpu.finish();
    const reported = new Promise<number>((resolve) => spinner.once('message', (m) => resolve(m as number)));
    spinner.send('stop');
    const selfSeconds = await reported;
    expect(shares.seconds).toBeGreaterThan(1.4);
    // However busy the machine is (Jest's other worker may run a drill), both readings see the same CPU.
    expect(shares.groups.spinning).toBeGreaterThan(0.05);
    expect(Math.abs(shares.groups.spinning - selfSeconds / shares.seconds)).toBeLessThan(0.15);
    expect(shares.mainThread).toBeLessThan(0.1);
    expect(shares.groups.sleeping).toBeLessThan(0.05);
    expect(shares.machine).toBeGreaterThanOrEqual(shares.groups.spinning - 0.1);
  } finally {
    spinner.kill('SIGKILL');
    sleeper.kill('SIGKILL');
  }
});
