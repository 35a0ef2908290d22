export * from './signature';
export * from './webhook.sender';
export * from './rabbitmq.sender';
export * from './address-policy';
export * from './trace-context';
