export * from './delivery.jobs';
export * from './delivery.scheduler';
export * from './deliver.processor';
export * from './reconciler';
