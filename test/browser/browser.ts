/**
 * Headless Chromium for the browser tests: the Debian package, driven by playwright-core. A machine
 * without it fails the test with the command that installs it; nothing is skipped.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** `extraArgs`: Chromium flags beyond `--no-sandbox` (e.g. fake media devices). */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install it: apt-get install -y chromium`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', ...extraArgs] });
}
