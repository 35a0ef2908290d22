import { FormatRegistry } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { MessageId, Topic } from './common.schema';
import { ListMessagesQuery, PrepareMessageBody } from './message.schema';

// TypeBox's checker knows no formats by itself; the service validates `uri` with ajv-formats.
FormatRegistry.Set('uri', (value) => URL.canParse(value));

describe('contract schemas', () => {
  it('accepts the documented example of a prepare body', () => {
    for (const example of PrepareMessageBody.examples as unknown[]) expect(Value.Check(PrepareMessageBody, example)).toBe(true);
  });

  it('holds the id grammar: 1–128 of A-Z a-z 0-9 _ : -, no dot (the id is part of the signed string)', () => {
    for (const ok of ['a', 'A-b_c:9', 'x'.repeat(128)]) expect(Value.Check(MessageId, ok), ok).toBe(true);
    for (const bad of ['', 'a.b', 'a b', 'é', 'x'.repeat(129), 'a/b']) expect(Value.Check(MessageId, bad), bad).toBe(false);
  });

  it('holds the topic grammar: dot-separated non-empty words of A-Z a-z 0-9 _ -', () => {
    for (const ok of ['order', 'order.paid', 'a-b_c.D9', 'x'.repeat(200)]) expect(Value.Check(Topic, ok), ok).toBe(true);
    for (const bad of ['', '.a', 'a.', 'a..b', 'a b', 'a*', 'a#', 'x'.repeat(201)]) expect(Value.Check(Topic, bad), bad).toBe(false);
  });

  it('refuses unknown fields in a prepare body and a listing query', () => {
    expect(Value.Check(PrepareMessageBody, { topic: 'a', payload: 1, extra: true })).toBe(false);
    expect(Value.Check(ListMessagesQuery, { colour: 'red' })).toBe(false);
  });
});
