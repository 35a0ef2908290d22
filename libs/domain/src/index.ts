export * from './message';
export * from './message-status';
export * from './check-policy';
export * from './canonical-json';
export * from './cursor';
export * from './message-rules';
