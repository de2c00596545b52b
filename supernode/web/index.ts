/** The console's public module: what the CLI uses. */
export { buildConsoleServer, type ConsoleServer, type ConsoleServerOptions, runConsole } from './server';
