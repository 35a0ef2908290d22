export * from './delivery.jobs';
export * from './delivery.scheduler';
export * from './deliver.processor';
export * from './reconciler';
export * from './check.jobs';
export * from './check.processor';
export * from './check.sweeper';
export * from './requeue';
