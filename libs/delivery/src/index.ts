export * from './signature';
export * from './webhook.sender';
export * from './header-merge';
export * from './rabbitmq.sender';
export * from './address-policy';
export * from './trace-context';
