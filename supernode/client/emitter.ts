/**
 * The SDK's event emitter: Node's EventEmitter interface (so `events.once(client, 'connected')` and
 * other Node code keep working), typed by an event map, with no Node import, so the same classes run
 * in browsers. No 'error' event magic and no listener-count warning: the SDK emits neither.
 */
// biome-ignore lint/suspicious/noExplicitAny: listener arguments are checked through the event map
type AnyListener = (...args: any[]) => void;

export type EventMap<T> = { [K in keyof T]: unknown[] };

export class Emitter<Events extends EventMap<Events>> {
  private readonly listenersByEvent = new Map<keyof Events, AnyListener[]>();

  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const listeners = this.listenersByEvent.get(event);
    if (listeners) listeners.push(listener);
    else this.listenersByEvent.set(event, [listener]);
    return this;
  }

  addListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.on(event, listener);
  }

  prependListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const listeners = this.listenersByEvent.get(event);
    if (listeners) listeners.unshift(listener);
    else this.listenersByEvent.set(event, [listener]);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.on(event, this.onceWrapper(event, listener));
  }

  prependOnceListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.prependListener(event, this.onceWrapper(event, listener));
  }

  private onceWrapper<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void) {
    const wrapper = Object.assign(
      (...args: Events[K]): void => {
        this.off(event, wrapper);
        listener(...args);
      },
      { listener },
    );
    return wrapper;
  }

  /** Removes the last registration of `listener` (or of a `once` wrapping it), as Node does. */
  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const listeners = this.listenersByEvent.get(event);
    if (!listeners) return this;
    for (let i = listeners.length - 1; i >= 0; i--) {
      const registered = listeners[i] as AnyListener & { listener?: AnyListener };
      if (registered === listener || registered.listener === listener) {
        listeners.splice(i, 1);
        break;
      }
    }
    if (listeners.length === 0) this.listenersByEvent.delete(event);
    return this;
  }

  removeListener<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.listenersByEvent.clear();
    else this.listenersByEvent.delete(event);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.listenersByEvent.get(event)?.length ?? 0;
  }

  /** The listeners of `event`, `once` ones unwrapped. */
  listeners(event: keyof Events): AnyListener[] {
    return this.rawListeners(event).map((l) => (l as AnyListener & { listener?: AnyListener }).listener ?? l);
  }

  rawListeners(event: keyof Events): AnyListener[] {
    return [...(this.listenersByEvent.get(event) ?? [])];
  }

  eventNames(): (keyof Events)[] {
    return [...this.listenersByEvent.keys()];
  }

  /** Kept for Node compatibility; there is no limit to warn about. */
  setMaxListeners(_n: number): this {
    return this;
  }

  getMaxListeners(): number {
    return 0;
  }

  /** Calls the listeners in order, synchronously; one added or removed meanwhile waits for the next emit. */
  emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const listeners = this.listenersByEvent.get(event);
    if (!listeners) return false;
    for (const listener of [...listeners]) listener(...args);
    return true;
  }
}
