export * from './common.schema';
export * from './message.schema';
export * from './health.schema';
