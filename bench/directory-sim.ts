/**
 * `npx tsx bench/directory-sim.ts [--nodes 100] [--users 1000000] [--replicas 2] [--seed 1]`: an
 * in-process simulation (no sockets) of the presence directory, whose records live on the R owners that
 * rendezvous hashing picks for each user among the live supernodes. Counts mesh messages, not time.
 *
 * Model:
 * - Every user is homed on a uniformly random node, which registers it: one message to each owner that is
 *   not the home node itself (a record for a local owner is written in place).
 * - A lookup comes from a uniformly random live node: one message to the first owner unless that is the
 *   requester; if the first owner is dead but still listed (before discovery notices), one more to the next.
 * - Join: a node is added; every record whose owner set gains it is re-published to it by the user's home.
 * - Leave: a node dies; the owners purge the records of the users homed on it (no messages: each owner
 *   sees the membership change), and the home of every other user it owned re-publishes the record to the
 *   member that replaces it (nothing to send when that member is the home itself).
 * Join and leave both start from the same n-node state. Owner sets after a change are recomputed from
 * scratch over all members, not derived from the HRW property, so the counts also check that property.
 */
import { combine, type KeyDigest, keyDigest, memberDigest, owners } from '../supernode/mesh/rendezvous';

export interface DirectorySimOptions {
  nodes: number;
  users: number;
  replicas: number;
  /** PRNG seed for homes, requesters, node ids and the node that leaves. @default 1 */
  seed?: number;
}

export interface DirectorySimResult {
  nodes: number;
  users: number;
  replicas: number;
  /** users × replicas: the records the directory holds. */
  records: number;
  register: { messages: number; mean: number; expectedMean: number };
  /** Records held per node: shows the balance. */
  recordsPerNode: { min: number; max: number; mean: number };
  lookup: {
    messages: number;
    mean: number;
    expectedMean: number;
    /** One node dead but still listed: lookups whose first owner it was pay one more message. */
    withOneDown: { messages: number; mean: number; fallbacks: number };
  };
  join: MembershipChange;
  leave: MembershipChange & { departed: string; purgedUsers: number; purgedRecords: number };
  /** Users whose owners were also computed with owners() and compared (a mismatch throws). */
  crossChecked: number;
  elapsedMs: number;
}

export interface MembershipChange {
  /** Users whose owner set changed. */
  keysChanged: number;
  fractionOfKeys: number;
  /** R/(n+1) for a join, R/n for a leave. */
  expectedFractionOfKeys: number;
  /** Records that had to be sent to a new owner (re-publish messages). */
  recordsMoved: number;
  /** recordsMoved / records. */
  fractionOfRecords: number;
  /** New owners that were the home node itself: placed locally, no message. */
  local: number;
  /** Owner-set changes not explained by the joining/leaving node; HRW promises 0. */
  unexpected: number;
}

/** mulberry32: a small seeded PRNG, so that runs are repeatable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes the R best members (indexes into `digests`) of a key into out[0..R), best first. Ties go to the
 * smaller id (`rank` is each member's position in id order), as in owners().
 */
function topOwners(
  key: KeyDigest,
  digests: Float64Array,
  rank: Int32Array,
  replicas: number,
  out: Int32Array,
  weights: Float64Array,
): void {
  let kept = 0;
  for (let m = 0; m < digests.length; m++) {
    const w = combine(key, digests[m]);
    if (
      kept === replicas &&
      (w < weights[kept - 1] || (w === weights[kept - 1] && rank[m] > rank[out[kept - 1]]))
    ) {
      continue;
    }
    let pos = kept < replicas ? kept++ : kept - 1;
    while (pos > 0 && (w > weights[pos - 1] || (w === weights[pos - 1] && rank[m] < rank[out[pos - 1]]))) {
      weights[pos] = weights[pos - 1];
      out[pos] = out[pos - 1];
      pos--;
    }
    weights[pos] = w;
    out[pos] = m;
  }
}

interface Membership {
  ids: string[];
  digests: Float64Array;
  rank: Int32Array;
}

function membership(ids: string[]): Membership {
  const byId = ids.map((id, i) => ({ id, i })).sort((a, b) => (a.id < b.id ? -1 : 1));
  const rank = new Int32Array(ids.length);
  byId.forEach(({ i }, r) => {
    rank[i] = r;
  });
  return { ids, digests: Float64Array.from(ids, memberDigest), rank };
}

function includes(list: Int32Array, from: number, count: number, value: number): boolean {
  for (let i = from; i < from + count; i++) if (list[i] === value) return true;
  return false;
}

const CROSS_CHECKS = 1000;

export function runDirectorySimulation(options: DirectorySimOptions): DirectorySimResult {
  const { nodes: n, users, replicas: R } = options;
  if (!Number.isInteger(n) || n < 2) throw new RangeError('nodes must be an integer >= 2');
  if (!Number.isInteger(users) || users < 1) throw new RangeError('users must be a positive integer');
  if (!Number.isInteger(R) || R < 1 || R >= n) throw new RangeError('replicas must be 1..nodes-1');
  const started = performance.now();
  const random = prng(options.seed ?? 1);
  const pick = (count: number) => Math.floor(random() * count);
  const instanceId = () =>
    `i-0${Math.floor(random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0')}${Math.floor(random() * 2 ** 32)
      .toString(16)
      .padStart(8, '0')}`;

  const ids = Array.from({ length: n }, instanceId);
  const base = membership(ids);
  const departed = pick(n);
  const joined = membership([...ids, instanceId()]);
  // Index i of `left` is node i of `base`, skipping the departed one.
  const leftIndex = ids.map((_, i) => i).filter((i) => i !== departed);
  const left = membership(leftIndex.map((i) => ids[i]));

  const home = new Int32Array(users);
  const owned = new Int32Array(users * R);
  const keys = new Int32Array(users * 2);
  const held = new Float64Array(n);
  const out = new Int32Array(R);
  const weights = new Float64Array(R);
  let registerMessages = 0;
  let lookupMessages = 0;
  let lookupMessagesOneDown = 0;
  let fallbacks = 0;
  let crossChecked = 0;

  for (let u = 0; u < users; u++) {
    const key = `user-${u}`;
    const k = keyDigest(key);
    keys[2 * u] = k.h1;
    keys[2 * u + 1] = k.h2;
    const h = pick(n);
    home[u] = h;
    topOwners(k, base.digests, base.rank, R, out, weights);
    for (let r = 0; r < R; r++) {
      owned[u * R + r] = out[r];
      held[out[r]]++;
      if (out[r] !== h) registerMessages++;
    }
    if (crossChecked < CROSS_CHECKS) {
      const expected = owners(key, ids, R).join();
      const got = Array.from(out, (m) => ids[m]).join();
      if (got !== expected) throw new Error(`owners mismatch for ${key}: ${got} vs ${expected}`);
      crossChecked++;
    }
    // Lookups come from live nodes only: the departed one cannot ask anything in the failure window.
    let requester = pick(n - 1);
    if (requester >= departed) requester++;
    const first = out[0];
    if (first !== requester) lookupMessages++;
    if (first !== requester) lookupMessagesOneDown++;
    if (first === departed && R > 1) {
      fallbacks++;
      if (out[1] !== requester) lookupMessagesOneDown++;
    }
  }

  // A mutable digest re-filled from `keys`, so the later passes allocate nothing per user.
  const k = { h1: 0, h2: 0 };
  const joinChange = emptyChange();
  const newcomer = n; // the added node's index in `joined`
  for (let u = 0; u < users; u++) {
    k.h1 = keys[2 * u];
    k.h2 = keys[2 * u + 1];
    topOwners(k, joined.digests, joined.rank, R, out, weights);
    let changed = false;
    for (let r = 0; r < R; r++) {
      if (includes(owned, u * R, R, out[r])) continue;
      changed = true;
      if (out[r] !== newcomer) joinChange.unexpected++;
      if (out[r] === home[u]) joinChange.local++;
      else joinChange.recordsMoved++;
    }
    if (changed) joinChange.keysChanged++;
  }

  const leaveChange = emptyChange();
  let purgedUsers = 0;
  let purgedRecords = 0;
  for (let u = 0; u < users; u++) {
    const wasOwner = includes(owned, u * R, R, departed);
    if (home[u] === departed) {
      // Homed on the dead node: every surviving owner drops the record; nobody re-publishes it.
      purgedUsers++;
      purgedRecords += wasOwner ? R - 1 : R;
      continue;
    }
    k.h1 = keys[2 * u];
    k.h2 = keys[2 * u + 1];
    topOwners(k, left.digests, left.rank, R, out, weights);
    let changed = false;
    for (let r = 0; r < R; r++) {
      const node = leftIndex[out[r]];
      if (includes(owned, u * R, R, node)) continue;
      changed = true;
      if (!wasOwner) leaveChange.unexpected++;
      if (node === home[u]) leaveChange.local++;
      else leaveChange.recordsMoved++;
    }
    if (changed) leaveChange.keysChanged++;
    else if (wasOwner) leaveChange.unexpected++; // R < n - 1, so someone must replace the dead owner
  }

  const records = users * R;
  finishChange(joinChange, users, records, R / (n + 1));
  finishChange(leaveChange, users, records, R / n);
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (const c of held) {
    min = Math.min(min, c);
    max = Math.max(max, c);
  }
  return {
    nodes: n,
    users,
    replicas: R,
    records,
    // The home node is one of the R owners with probability R/n, which saves one message.
    register: { messages: registerMessages, mean: registerMessages / users, expectedMean: R - R / n },
    recordsPerNode: { min, max, mean: records / n },
    lookup: {
      messages: lookupMessages,
      mean: lookupMessages / users,
      expectedMean: 1 - 1 / n,
      withOneDown: { messages: lookupMessagesOneDown, mean: lookupMessagesOneDown / users, fallbacks },
    },
    join: joinChange,
    leave: { ...leaveChange, departed: ids[departed], purgedUsers, purgedRecords },
    crossChecked,
    elapsedMs: performance.now() - started,
  };
}

function emptyChange(): MembershipChange {
  return {
    keysChanged: 0,
    fractionOfKeys: 0,
    expectedFractionOfKeys: 0,
    recordsMoved: 0,
    fractionOfRecords: 0,
    local: 0,
    unexpected: 0,
  };
}

function finishChange(c: MembershipChange, users: number, records: number, expected: number): void {
  c.fractionOfKeys = c.keysChanged / users;
  c.expectedFractionOfKeys = expected;
  c.fractionOfRecords = c.recordsMoved / records;
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const int = (x: number) => x.toLocaleString('en-US');

export function formatDirectorySim(r: DirectorySimResult, command: string): string {
  const rows: [string, string, string][] = [
    [
      'register: messages per register (mean)',
      r.register.mean.toFixed(4),
      r.register.expectedMean.toFixed(4),
    ],
    [
      'records per node (min / mean / max)',
      `${int(r.recordsPerNode.min)} / ${int(r.recordsPerNode.mean)} / ${int(r.recordsPerNode.max)}`,
      '',
    ],
    ['lookup: messages per lookup (mean)', r.lookup.mean.toFixed(4), r.lookup.expectedMean.toFixed(4)],
    [
      'lookup, one owner dead but listed (mean)',
      `${r.lookup.withOneDown.mean.toFixed(4)} (${int(r.lookup.withOneDown.fallbacks)} fallbacks)`,
      (r.lookup.expectedMean + 1 / r.nodes).toFixed(4),
    ],
    [
      'join: users whose owners changed',
      `${int(r.join.keysChanged)} (${pct(r.join.fractionOfKeys)})`,
      `R/(n+1) = ${pct(r.join.expectedFractionOfKeys)}`,
    ],
    [
      'join: records moved (re-publish messages)',
      `${int(r.join.recordsMoved)} (${pct(r.join.fractionOfRecords)} of ${int(r.records)})`,
      `1/(n+1) = ${pct(1 / (r.nodes + 1))}`,
    ],
    [
      'leave: users whose owners changed',
      `${int(r.leave.keysChanged)} (${pct(r.leave.fractionOfKeys)})`,
      `≈ R/n·(1-1/n) = ${pct((r.replicas / r.nodes) * (1 - 1 / r.nodes))}`,
    ],
    [
      'leave: records re-published (messages)',
      `${int(r.leave.recordsMoved)} (${pct(r.leave.fractionOfRecords)}) + ${int(r.leave.local)} local`,
      `≈ 1/n = ${pct(1 / r.nodes)}`,
    ],
    [
      'leave: users purged (records dropped)',
      `${int(r.leave.purgedUsers)} (${int(r.leave.purgedRecords)})`,
      `≈ users/n = ${int(Math.round(r.users / r.nodes))}`,
    ],
    ['owner changes not caused by the join/leave', `${r.join.unexpected + r.leave.unexpected}`, '0'],
  ];
  const w0 = Math.max(...rows.map((row) => row[0].length));
  const w1 = Math.max(...rows.map((row) => row[1].length));
  const lines = [
    `directory simulation: ${r.nodes} nodes, ${int(r.users)} users, R = ${r.replicas}`,
    '',
    `${'figure'.padEnd(w0)}  ${'measured'.padEnd(w1)}  expected`,
    ...rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
    '',
    `owners() cross-checked on ${int(r.crossChecked)} users; elapsed ${(r.elapsedMs / 1000).toFixed(1)} s`,
    `command: ${command}`,
  ];
  return lines.join('\n');
}

function parseArgs(argv: string[]): DirectorySimOptions {
  const options: DirectorySimOptions = { nodes: 100, users: 1_000_000, replicas: 2, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const name = flag.replace(/^--/, '');
    if (!['nodes', 'users', 'replicas', 'seed'].includes(name) || !flag.startsWith('--')) {
      console.error(`directory-sim: unknown argument "${argv[i].slice(0, 40)}"`);
      process.exit(2);
    }
    const raw = inline ?? argv[++i];
    const value = Number(raw);
    if (!Number.isInteger(value)) {
      console.error(`directory-sim: --${name} takes an integer; got "${raw ?? ''}"`);
      process.exit(2);
    }
    options[name as keyof DirectorySimOptions] = value;
  }
  return options;
}

if (require.main === module) {
  const options = parseArgs(process.argv.slice(2));
  const command =
    `npx tsx bench/directory-sim.ts --nodes ${options.nodes} --users ${options.users}` +
    ` --replicas ${options.replicas} --seed ${options.seed}`;
  console.log(formatDirectorySim(runDirectorySimulation(options), command));
}
