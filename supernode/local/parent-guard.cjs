// Preloaded (node --require) into every component the local tier starts. Components run in their
// own process groups, so that Ctrl-C reaches only the supervisor: then nothing else would stop them if
// the supervisor died without stopping them (kill -9, out of memory). The supervisor holds the other
// end of this process's stdin; when it is gone, stdin ends and the component stops as on SIGTERM
// (a supernode drains), instead of holding its ports forever.
'use strict';

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  process.kill(process.pid, 'SIGTERM');
};
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
// Watching stdin must not keep a component alive that is otherwise done.
process.stdin.unref?.();
