/** The supernode's public module: what other parts of the product (CLI, local tier, drills) use. */
export {
  buildSupernode,
  type ReadyState,
  runSupernode,
  type Supernode,
  type SupernodeOptions,
} from './server';
