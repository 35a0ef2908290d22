export * from './herald.process';
export * from './private.services';
export * from './sinks';
export * from './wait';
