import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCrash, parseCrashOptions, runCrashDrill } from '../../supernode/drill/crash';
import { formatStorm, parseStormOptions, runStormDrill } from '../../supernode/drill/storm';

// Small versions of `npm run drill`: the same code paths, real processes, loopback only.
let out: string;
beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'drill-out-'));
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

test('storm: with cached credentials every client is back and nobody logs in; with them lost, logins proceed and nobody gives up', async () => {
  const result = await runStormDrill(
    parseStormOptions([
      '--clients',
      '150',
      '--lost-window-sec',
      '8',
      '--calibrate-sec',
      '3',
      '--start-jitter-ms',
      '1000',
      '--reconnect-timeout-sec',
      '90',
      '--out',
      out,
    ]),
  );
  console.log(formatStorm(result));
  expect(result.cached.t100Sec).not.toBeNull();
  expect(result.cached.reconnected).toBe(150);
  expect(result.cached.passwordLogins).toBe(0);
  expect(result.cached.gaveUp).toBe(0);
  expect(result.lost.passwordLogins).toBeGreaterThan(0);
  expect(result.lost.gaveUp).toBe(0);
  expect(result.lost.authHealthChecks).toBeGreaterThan(0);
  expect(result.lost.authHealthFailures).toBe(0);
  expect(result.cached.nodePeakRssBytes.every((bytes) => bytes > 0)).toBe(true);
  expect(JSON.parse(readFileSync(result.files.json, 'utf8')).cached.timeline.length).toBeGreaterThan(1);
  expect(readFileSync(result.files.svg, 'utf8')).toContain('<polyline');
}, 240_000);

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
