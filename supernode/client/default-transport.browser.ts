/** The browser's default transport: the global WebSocket (see default-transport.ts). */
import { type OpenTransport, webSocketTransport } from './transport';

export const defaultTransport: OpenTransport = webSocketTransport();
