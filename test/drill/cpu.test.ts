/** The drills' CPU accounting against processes whose use is known: one spinning, one asleep. */
import { type ChildProcess, spawn } from 'node:child_process';
import { measureCpu } from '../../supernode/drill/cpu';

function node(code: string): ChildProcess {
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

test('a spinning thread counts as about one core, a sleeping process as none', async () => {
  // The spinner's busy thread is a worker: its main thread stays nearly idle.
  const spinner = node("new (require('node:worker_threads').Worker)('for (;;) {}', { eval: true });");
  const sleeper = node('setTimeout(() => {}, 60000);');
  try {
    await new Promise((r) => setTimeout(r, 300));
    const cpu = measureCpu(
      () => ({ spinning: [spinner.pid as number], sleeping: [sleeper.pid as number] }),
      () => spinner.pid,
    );
    await new Promise((r) => setTimeout(r, 1500));
    const shares = cpu.finish();
    expect(shares.seconds).toBeGreaterThan(1.4);
    // On 2 shared cores (Jest's other worker runs too) the spinner gets at least a good part of one.
    expect(shares.groups.spinning).toBeGreaterThan(0.4);
    expect(shares.groups.spinning).toBeLessThan(1.3);
    expect(shares.mainThread).toBeLessThan(0.1);
    expect(shares.groups.sleeping).toBeLessThan(0.05);
    expect(shares.machine).toBeGreaterThanOrEqual(shares.groups.spinning - 0.1);
  } finally {
    spinner.kill('SIGKILL');
    sleeper.kill('SIGKILL');
  }
});
