import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { resourcesOf } from './tier';

/**
 * The boot script of a launch template as the instance gets it, with CloudFormation references
 * rendered as placeholders (`REF:<logical id>`); a join of literals is joined, as CloudFormation does.
 */
export function bootScriptOf(template: Template, command: 'node' | 'auth'): string {
  const lt = Object.values(resourcesOf(template, 'AWS::EC2::LaunchTemplate')).find((r) =>
    JSON.stringify(r.Properties).includes(`supernode.cjs ${command}`),
  );
  if (!lt) throw new Error(`no launch template runs "supernode.cjs ${command}"`);
  const data = lt.Properties.LaunchTemplateData as {
    UserData: { 'Fn::Base64': { 'Fn::Join': [string, unknown[]] } };
  };
  return data.UserData['Fn::Base64']['Fn::Join'][1].map(rendered).join('');
}

function rendered(part: unknown): string {
  if (typeof part === 'string') return part;
  const join = (part as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join?.[1].every((item) => typeof item === 'string' || (item as object)['Fn::Join' as never])) {
    const items = join[1].map(rendered);
    if (!items.some((item) => item.startsWith('REF:'))) return items.join(join[0]);
  }
  return `REF:${JSON.stringify(part).replace(/\W+/g, '_')}`;
}

/** The directories the script writes to: each is a variable at its top, pointed into a temp dir here. */
const PATH_VARIABLES = ['ETC_DIR', 'OPT_DIR', 'DATA_DIR', 'UNIT_DIR', 'PER_BOOT', 'LOG_FILE', 'NODE_BIN'];

export interface Instance {
  /** The temp dir standing in for the instance's disk. */
  readonly root: string;
  /** Files by the path the script would use on the instance (`/etc/supernode/...`). */
  file(path: string): string | undefined;
  /** The first boot: cloud-init runs the user data `script`, with the instance in `lifecycleState`. */
  boot(script: string, options: BootOptions): BootResult;
  /** A later boot: cloud-init runs what is in its per-boot folder (user data does not run again). */
  reboot(options: BootOptions): BootResult;
  /** Removes the temp dir. */
  dispose(): void;
}

export interface BootOptions {
  /** What IMDS answers for autoscaling/target-lifecycle-state; undefined = not in a group (404). */
  readonly lifecycleState: string | undefined;
  /** Exit code of `supernode soak`. @default 0 */
  readonly soakExit?: number;
  /** `aws <service> <command>` invocations that fail, e.g. `s3api head-object`. @default none */
  readonly failingAws?: string[];
  /** A command (by name) that fails, like a broken `dnf`. @default none */
  readonly failingCommand?: string;
}

export interface BootResult {
  readonly status: number | null;
  readonly output: string;
  /** Every stubbed command the run called, one line each: `name arg arg ...`. */
  readonly calls: string[];
  /** The calls of one command (`aws`, `systemctl`, `cfn-signal`, `node`...). */
  callsOf(name: string): string[];
}

const STUBS: Record<string, string> = {
  // IMDSv2: a token for the PUT, then files under imds/ by path; 404 (exit 22) for anything missing.
  curl: `url="\${@: -1}"
case "$*" in *"-X PUT"*) echo token; exit 0;; esac
file="$FAKE/imds/\${url#*/latest/meta-data/}"
[ -f "$file" ] && cat "$file" && exit 0
exit 22`,
  aws: `for failing in $FAILING_AWS; do [ "$1 $2" = "\${failing/:/ }" ] && exit 1; done
case "$1 $2" in
  "s3 cp") echo bundle > "$4";;
  "secretsmanager get-secret-value") echo secret-value;;
esac
exit 0`,
  'cfn-signal': 'exit 0',
  // Retries wait for nothing here.
  sleep: 'exit 0',
  systemctl: 'exit 0',
  // Kernel settings of the instance, not of this machine.
  sysctl: 'exit 0',
  dnf: 'exit 0',
  useradd: 'exit 0',
  chown: 'exit 0',
  node: `[ "$2" = soak ] && exit "\${SOAK_EXIT:-0}"
exit 0`,
};

/** A fake instance: stub commands on PATH, a fake IMDS, and the script's paths in a temp dir. */
export function fakeInstance(): Instance {
  const root = mkdtempSync(join(tmpdir(), 'boot-'));
  const bin = join(root, 'bin');
  mkdirSync(bin);
  mkdirSync(join(root, 'imds', 'placement'), { recursive: true });
  mkdirSync(join(root, 'imds', 'tags', 'instance'), { recursive: true });
  mkdirSync(join(root, 'imds', 'autoscaling'), { recursive: true });
  writeFileSync(join(root, 'imds', 'instance-id'), 'i-0123456789abcdef0');
  writeFileSync(join(root, 'imds', 'local-ipv4'), '10.40.16.7');
  writeFileSync(join(root, 'imds', 'placement', 'region'), 'us-east-1');
  writeFileSync(join(root, 'imds', 'tags', 'instance', 'aws:autoscaling:groupName'), 'fleet-group');
  const stub = (name: string, body: string) => {
    const path = join(bin, name);
    writeFileSync(path, `#!/bin/bash\necho "${name} $*" >> "$FAKE/calls.log"\n${body}\n`);
    chmodSync(path, 0o755);
  };
  for (const [name, body] of Object.entries(STUBS)) stub(name, body);
  const mapped = (path: string) => join(root, 'fs', path);
  let callsSeen = 0;
  const run = (path: string, options: BootOptions): BootResult => {
    const stateFile = join(root, 'imds', 'autoscaling', 'target-lifecycle-state');
    if (options.lifecycleState === undefined) rmSync(stateFile, { force: true });
    else writeFileSync(stateFile, options.lifecycleState);
    if (options.failingCommand) stub(options.failingCommand, 'exit 1');
    const result = spawnSync('/bin/bash', [path], {
      env: {
        PATH: `${bin}:/usr/bin:/bin`,
        FAKE: root,
        SOAK_EXIT: String(options.soakExit ?? 0),
        FAILING_AWS: (options.failingAws ?? []).map((call) => call.replace(' ', ':')).join(' '),
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (options.failingCommand) stub(options.failingCommand, STUBS[options.failingCommand] ?? 'exit 0');
    const log = existsSync(join(root, 'calls.log')) ? readFileSync(join(root, 'calls.log'), 'utf8') : '';
    const all = log.split('\n').filter(Boolean);
    const calls = all.slice(callsSeen);
    callsSeen = all.length;
    return {
      status: result.status,
      output: `${result.stdout}${result.stderr}`,
      calls,
      callsOf: (name) => calls.filter((call) => call.split(' ')[0] === name),
    };
  };
  return {
    root,
    file: (path) => (existsSync(mapped(path)) ? readFileSync(mapped(path), 'utf8') : undefined),
    boot(script, options) {
      // Refuse to run a script whose paths cannot all be redirected: it would write to this machine.
      for (const variable of PATH_VARIABLES) {
        if (!new RegExp(`^${variable}=/`, 'm').test(script)) {
          throw new Error(`boot script has no ${variable}=/... line to point into a temp dir`);
        }
      }
      const redirected = script.replace(
        new RegExp(`^(${PATH_VARIABLES.join('|')})=(/.*)$`, 'gm'),
        (_line, variable: string, path: string) =>
          variable === 'NODE_BIN' ? `${variable}=${join(bin, 'node')}` : `${variable}=${mapped(path)}`,
      );
      for (const dir of ['/etc/systemd/system', '/opt', '/var/lib', '/var/log'])
        mkdirSync(mapped(dir), { recursive: true });
      const path = join(root, 'part-001');
      writeFileSync(path, redirected);
      chmodSync(path, 0o700);
      return run(path, options);
    },
    reboot(options) {
      const dir = mapped('/var/lib/cloud/scripts/per-boot');
      const scripts = existsSync(dir) ? readdirSync(dir) : [];
      if (scripts.length !== 1) throw new Error(`per-boot folder holds ${scripts.length} scripts, not 1`);
      return run(join(dir, scripts[0]), options);
    },
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}
