export * from './client';
export * from './errors';
export * from './routes';
export * from './types';
export { verifyWebhook, WebhookVerificationError, type VerifiedWebhook, type VerifyOptions, type HeaderBag } from './webhook.verifier';
