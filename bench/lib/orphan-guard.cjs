// Preloaded (`node --require`) into every process the benchmark starts: when the runner is gone (its
// parent pid changes, e.g. the runner was killed with SIGKILL), the child ends itself, so no supernode
// or load generator is ever left behind holding thousands of sockets.
const parent = process.ppid;
const timer = setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}, 1000);
timer.unref();
