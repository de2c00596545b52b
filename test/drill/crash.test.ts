import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCrash, parseCrashOptions, runCrashDrill } from '../../supernode/drill/crash';

// A small version of `supernode drill crash`: the same code paths, real processes, loopback only.
let out: string;
beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'drill-out-'));
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

test("crash: a killed node's clients re-home, acknowledged messages arrive, and the release gate refuses a crashing build", async () => {
  const result = await runCrashDrill(
    parseCrashOptions([
      '--clients',
      '150',
      '--before-sec',
      '3',
      '--after-sec',
      '12',
      '--traffic-interval-ms',
      '1000',
      '--soak-sec',
      '6',
      '--fault-after-ms',
      '2000',
      '--start-jitter-ms',
      '1000',
      '--out',
      out,
    ]),
  );
  console.log(formatCrash(result));
  expect(result.victimClients).toBeGreaterThan(0);
  expect(result.rehomeSec).not.toBeNull();
  expect(result.rehomeSec as number).toBeLessThan(12);
  expect(result.lookups).toBeGreaterThan(0);
  expect(result.messagesAcked).toBeGreaterThan(0);
  // An ack means the recipient's node wrote the message to its connection; kill -9 of that node can
  // still lose what sat in its socket buffer. Rare, measured, never more than a sliver.
  expect(result.messagesLostAfterAck).toBeLessThanOrEqual(Math.ceil(result.messagesAcked * 0.01));
  expect(result.lookupSuccessRate).toBeGreaterThan(0.99);
  expect(result.gate.refused).toBe(true);
  expect(existsSync(result.files.svg)).toBe(true);
}, 180_000);
