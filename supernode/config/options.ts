import { parseArgs } from 'node:util';

/**
 * One table per command describes every option once: the CLI flag, the environment variable, the
 * default, the allowed values and the help text. Parsing, `--help` and docs/configuration.md are all
 * derived from it, so they cannot drift apart.
 */
interface BaseSpec {
  env: string;
  help: string;
  /** The value when the option is not given, in words, where `default` cannot hold it (e.g. <hostname>-<port>). */
  defaultHelp?: string;
}
export interface IntSpec extends BaseSpec {
  kind: 'int';
  min: number;
  max: number;
  default?: number;
}
export interface StringSpec extends BaseSpec {
  kind: 'string';
  default?: string;
  /** Allowed shape, and how to say it in an error. */
  pattern?: { regex: RegExp; description: string };
}
export interface BoolSpec extends BaseSpec {
  kind: 'bool';
  default: boolean;
}
export interface ListSpec extends BaseSpec {
  kind: 'list';
  default: string[];
  item?: { regex: RegExp; description: string };
  maxItems: number;
}
export interface EnumSpec<C extends string = string> extends BaseSpec {
  kind: 'enum';
  choices: readonly C[];
  default: C;
}
export type OptionSpec = IntSpec | StringSpec | BoolSpec | ListSpec | EnumSpec;
export type OptionTable = Record<string, OptionSpec>;

type ValueOf<S> = S extends IntSpec
  ? S extends { default: number }
    ? number
    : number | undefined
  : S extends StringSpec
    ? S extends { default: string }
      ? string
      : string | undefined
    : S extends BoolSpec
      ? boolean
      : S extends ListSpec
        ? string[]
        : S extends EnumSpec<infer C>
          ? C
          : never;
export type OptionValues<T extends OptionTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

/** A configuration value that is not allowed: the message names the option and what is allowed. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `maxSessions` -> `--max-sessions`. */
export function flagOf(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export function allowedOf(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer from ${spec.min} to ${spec.max}`;
    case 'string':
      return spec.pattern ? spec.pattern.description : 'a string';
    case 'bool':
      return 'true or false';
    case 'list':
      return `a comma-separated list of at most ${spec.maxItems} items${spec.item ? ` (${spec.item.description})` : ''}`;
    case 'enum':
      return `one of ${spec.choices.join(', ')}`;
  }
}

function convert(name: string, spec: OptionSpec, raw: string, source: string): unknown {
  const fail = (): never => {
    const shown = raw.length > 80 ? `${raw.slice(0, 80)}...` : raw;
    throw new ConfigError(
      `${flagOf(name)} (${spec.env}) must be ${allowedOf(spec)}; got ${JSON.stringify(shown)} from ${source}`,
    );
  };
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) fail();
      const value = Number(raw.trim());
      if (!Number.isSafeInteger(value) || value < spec.min || value > spec.max) fail();
      // "-0" is zero: without this it stays -0, which prints as "0" but is not equal to 0 (Object.is).
      return value === 0 ? 0 : value;
    }
    case 'string':
      if (spec.pattern && !spec.pattern.regex.test(raw)) fail();
      return raw;
    case 'bool':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      return fail();
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      if (items.length > spec.maxItems) fail();
      if (spec.item) for (const item of items) if (!spec.item.regex.test(item)) fail();
      return items;
    }
    case 'enum':
      if (!spec.choices.includes(raw)) fail();
      return raw;
  }
}

/**
 * Resolves every option from, in order of precedence, the command line, the environment, the default.
 * Throws ConfigError on an unknown flag or a value that is not allowed.
 */
export function parseOptions<T extends OptionTable>(
  table: T,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): OptionValues<T> {
  const argSpec: Record<string, { type: 'string' | 'boolean' }> = {};
  const byFlag = new Map<string, string>();
  for (const [name, spec] of Object.entries(table)) {
    const flag = flagOf(name).slice(2);
    byFlag.set(flag, name);
    argSpec[flag] = { type: 'string' };
    // Booleans also accept the bare form (`--cloudwatch`) and `--no-cloudwatch`.
    if (spec.kind === 'bool') {
      argSpec[flag] = { type: 'boolean' };
      argSpec[`no-${flag}`] = { type: 'boolean' };
    }
  }
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({ args: argv, options: argSpec, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (err) {
    // parseArgs quotes the offending argument as given: control characters (a stray \r) would break
    // the one-line message, so they are shown escaped.
    const first = (err as Error).message
      .split('\n')[0]
      .replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    throw new ConfigError(`${first}; see --help for the options`);
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    const flag = flagOf(name).slice(2);
    const fromArg = parsed[flag];
    const negated = spec.kind === 'bool' ? parsed[`no-${flag}`] : undefined;
    if (typeof fromArg === 'boolean' || negated === true) {
      out[name] = negated !== true && fromArg === true;
    } else if (typeof fromArg === 'string') {
      out[name] = convert(name, spec, fromArg, 'the command line');
    } else if (env[spec.env] !== undefined && env[spec.env] !== '') {
      out[name] = convert(name, spec, env[spec.env] as string, `environment variable ${spec.env}`);
    } else {
      out[name] = spec.default;
    }
  }
  return out as OptionValues<T>;
}

/** `--help` text: one block per option with its variable, default and allowed values. */
export function helpText(usage: string, table: OptionTable): string {
  const lines = [usage, '', 'Options (each also reads the environment variable shown):'];
  for (const [name, spec] of Object.entries(table)) {
    const value = spec.kind === 'bool' ? '' : ' <value>';
    lines.push(`  ${flagOf(name)}${value}   [${spec.env}]`);
    lines.push(`      ${spec.help}`);
    lines.push(`      Allowed: ${allowedOf(spec)}. Default: ${defaultText(spec)}.`);
  }
  lines.push('  --help', '      Print this text and exit.');
  return lines.join('\n');
}

export function defaultText(spec: OptionSpec): string {
  if (spec.defaultHelp) return spec.defaultHelp;
  if (spec.default === undefined) return 'none';
  if (Array.isArray(spec.default)) return spec.default.length ? spec.default.join(',') : 'empty';
  return String(spec.default);
}

/** Applies the same checks to values given in code (tests, the local tier) as to flags and variables. */
export function resolveOptions<T extends OptionTable>(
  table: T,
  given: Partial<OptionValues<T>>,
): OptionValues<T> {
  const out = parseOptions(table, [], {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(given)) {
    // Own keys only: `toString` or `constructor` would otherwise find Object.prototype's.
    const spec = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!spec) throw new ConfigError(`unknown option ${name}`);
    if (value === undefined) continue;
    const raw = Array.isArray(value) ? value.join(',') : String(value);
    out[name] = convert(name, spec, raw, 'the options given');
  }
  return out as OptionValues<T>;
}

/** Value shapes several commands share. */
export const patterns = {
  host: { regex: /^[A-Za-z0-9.:-]{1,253}$/, description: 'a hostname or IP address' },
  httpUrl: { regex: /^https?:\/\/\S{1,2000}$/, description: 'an http:// or https:// URL' },
  path: { regex: /^\S.{0,1023}$/, description: 'a file path' },
};
