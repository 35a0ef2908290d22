export * from './inbox';
export * from './webhook.handler';
export * from './rabbitmq.consumer';
export * from '../webhook.verifier';
export * from '../transaction.runner';
