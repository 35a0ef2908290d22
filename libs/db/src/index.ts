export * from './connection';
export * from './migrator';
export * from './message.repository';
export { messages, type MessageRow } from './schema/messages';
