/** Asserting that something fails, and with what. */
import assert from "node:assert/strict";

// biome-ignore lint/suspicious/noExplicitAny: a constructor of any error class
type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

/** The error `fn` throws, asserted to be an `E`; fails the test when `fn` returns. */
export function thrown<E extends Error>(fn: () => unknown, type: ErrorClass<E>): E {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name}, but nothing was thrown`);
}

/** The error `p` rejects with, asserted to be an `E`; fails the test when `p` resolves. */
export async function rejected<E extends Error>(p: Promise<unknown> | unknown, type: ErrorClass<E>): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ${type.name} rejection, but it resolved`);
}
