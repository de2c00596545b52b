import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatStorm, parseStormOptions, runStormDrill } from '../../supernode/drill/storm';

// A small version of `supernode drill storm`: the same code paths, real processes, loopback only.
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
  // The pool's own hash time over the storm: some of it hashing, never much more than all of it (a hash
  // running at the first reading counts whole).
  expect(result.lost.hashPoolBusy).toBeGreaterThan(0);
  expect(result.lost.hashPoolBusy).toBeLessThanOrEqual(1.15);
  expect(result.lost.hashCapacityUnderLoadPerSec).toBeGreaterThan(0);
  expect(result.cached.nodePeakRssBytes.every((bytes) => bytes > 0)).toBe(true);
  expect(JSON.parse(readFileSync(result.files.json, 'utf8')).cached.timeline.length).toBeGreaterThan(1);
  expect(readFileSync(result.files.svg, 'utf8')).toContain('<polyline');
}, 240_000);
