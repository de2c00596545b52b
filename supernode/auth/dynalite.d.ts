// dynalite ships no types: just the part embedded-store.ts uses.
declare module 'dynalite' {
  import type { Server } from 'node:http';

  interface DynaliteOptions {
    /** LevelDB directory; in memory without it. */
    path?: string;
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
    verbose?: boolean;
  }

  /** An http.Server whose close() also closes the LevelDB store (and releases its lock). */
  function dynalite(options?: DynaliteOptions): Server;
  export = dynalite;
}
