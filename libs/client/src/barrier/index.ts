export * from './barrier';
export * from './barrier.store';
export * from './check.handler';
export * from '../transaction.runner';
