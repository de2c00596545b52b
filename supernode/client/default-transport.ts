/**
 * The transport a session uses when none is given. In Node, `ws`; the browser bundle
 * (build/browser-bundle.ts) resolves this module to default-transport.browser.ts instead, the way a
 * package's "browser" field would, so nothing of `ws` or Node reaches the browser.
 */
export { wsTransport as defaultTransport } from './ws-transport';
