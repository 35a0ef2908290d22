export * from './common.schema';
export * from './message.schema';
export * from './subscription.schema';
export * from './delivery.schema';
export * from './health.schema';
export * from './examples';
export * from './console.schema';
export * from './stats.schema';
