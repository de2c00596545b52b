/**
 * Runs `work` with an abort signal and a hard deadline: at `timeoutMs` the signal aborts and the
 * returned promise rejects with a TimeoutError carrying `message`, even if the work ignores the signal
 * (an SDK client that does, or a mock). Every AWS call the runtime makes goes through this.
 */
export async function withDeadline<T>(
  timeoutMs: number,
  message: string,
  work: (signal: AbortSignal) => Promise<T>,
  controller = new AbortController(),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(message);
      err.name = 'TimeoutError';
      controller.abort(err);
      reject(err);
    }, timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([work(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
