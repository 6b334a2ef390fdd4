/** Bytes that cannot start an Arrow IPC message: the framer's error shows them, escaped and short. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { bytesPreview, NON_IPC_PREVIEW_BYTES, NonIpcBytesError } from "../../src/errors.js";
import { MessageFramer } from "../../src/wire/framer.js";

const text = (s: string) => new TextEncoder().encode(s);

async function* from(...pieces: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* pieces;
}

async function framingError(...pieces: Uint8Array[]): Promise<NonIpcBytesError> {
  const framer = new MessageFramer(from(...pieces));
  try {
    await framer.next();
  } catch (err) {
    assert.ok(err instanceof NonIpcBytesError, `expected NonIpcBytesError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the framer to refuse the bytes");
}

test("text where a message should start is a protocol error that shows the text", async () => {
  const err = await framingError(text("hello world\n"));
  assert.equal(err.kind, "protocol_error");
  assert.equal(err.code, "INVALID_ARGUMENT");
  assert.equal(err.messageLength, 0x6c6c6568); // "hell", read as a little-endian length
  assert.equal(err.preview, '"hello world\\n"');
  assert.equal(
    err.message,
    'invalid IPC message length 1819043176: not an Arrow IPC stream (the bytes start "hello world\\n")',
  );
});

test("the preview escapes quotes, backslashes, control and non-ASCII bytes, across the pieces buffered", async () => {
  // The first piece is shorter than a length prefix, so the framer has buffered the second too.
  const rest = [...text('"q" \\'), 0x1b, 0x5b, 0x30, 0x6d, 0x0d, 0x09, 0x00];
  const err = await framingError(text("\u00e9 "), new Uint8Array(rest));
  assert.equal(err.preview, '"\\xc3\\xa9 \\"q\\" \\\\\\x1b[0m\\r\\t\\x00"');
  // Nothing the terminal or a log would interpret survives: printable ASCII only.
  assert.match(err.message, /^[\x20-\x7e]*$/);
});

test("a long run of text is cut to a short preview ending in an ellipsis", async () => {
  const long = "x".repeat(1000);
  const err = await framingError(text(long.slice(0, 2)), text(long.slice(2)));
  assert.equal(err.preview, `"${"x".repeat(NON_IPC_PREVIEW_BYTES)}…"`);
  assert.equal(bytesPreview([text("abc")], 2), '"ab…"');
  assert.equal(bytesPreview([text("ab")], 2), '"ab"');
});
