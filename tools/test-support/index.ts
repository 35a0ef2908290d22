export * from './herald.process';
export * from './leftovers';
export * from './private.services';
export * from './sinks';
export * from './wait';
