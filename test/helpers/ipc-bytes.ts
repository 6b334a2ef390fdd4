/** Finding things inside encoded IPC bytes, for tests that change a few of them on purpose. */
import { decodeMessage } from "../../src/wire/ipc.js";

/** One message of a byte stream: where its flatbuffer starts, its length, and its body's. */
export interface MessageSpan {
  readonly start: number;
  readonly metadataLength: number;
  readonly bodyLength: number;
}

/** The messages of well-formed IPC bytes (one stream or several back to back), EOS markers skipped. */
export function messageSpans(bytes: Uint8Array): MessageSpan[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: MessageSpan[] = [];
  let at = 0;
  while (at + 8 <= bytes.byteLength) {
    const length = view.getInt32(at + 4, true);
    if (length === 0) {
      at += 8;
      continue;
    }
    const message = decodeMessage(bytes.subarray(at + 8, at + 8 + length));
    out.push({ start: at + 8, metadataLength: length, bodyLength: message.bodyLength });
    at += 8 + length + message.bodyLength;
  }
  return out;
}

/**
 * Position in `bytes` of the field `slot` of the table at `table` (a flatbuffer position relative
 * to `base`), or null when the field is absent.
 */
export function fieldPosition(bytes: Uint8Array, base: number, table: number, slot: number): number | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vtable = base + table - view.getInt32(base + table, true);
  if (4 + slot * 2 >= view.getUint16(vtable, true)) return null;
  const rel = view.getUint16(vtable + 4 + slot * 2, true);
  return rel === 0 ? null : base + table + rel;
}

/** The Message table's position (relative to the flatbuffer) of the message at `span`. */
export function messageTable(bytes: Uint8Array, span: MessageSpan): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(span.start, true);
}

/**
 * Position in `bytes` of the entry count of the message's custom-metadata vector (what a
 * reader loops over), or null when it has none.
 */
export function customMetadataCountAt(bytes: Uint8Array, span: MessageSpan): number | null {
  const ref = fieldPosition(bytes, span.start, messageTable(bytes, span), 4);
  if (ref === null) return null;
  return ref + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(ref, true);
}
