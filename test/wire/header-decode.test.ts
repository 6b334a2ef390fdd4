/**
 * Headers are read with every code point kept: schemas and metadata read by quiver equal what
 * apache-arrow reads, except that a leading U+FEFF stays a character instead of being dropped.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Field, Int16, Schema, Struct, Utf8 } from "apache-arrow";
import { MessageHeader } from "apache-arrow/fb/message-header";
import { Message } from "apache-arrow/ipc/metadata/message";
import { batchFromColumns, rowsFromBatch, schemaOf } from "../../src/protocol/batch.js";
import { t } from "../../src/protocol/types.js";
import {
  concatBytes,
  decodeMessage,
  decodeStreamBytes,
  encodeSchemaMessage,
  encodeStream,
} from "../../src/wire/ipc.js";
import { messageSpans } from "../helpers/ipc-bytes.js";

const BOM = "\ufeff";

/** A schema as comparable plain data. */
function shape(schema: Schema): unknown {
  const field = (f: Field): unknown => ({
    name: f.name,
    type: String(f.type),
    nullable: f.nullable,
    metadata: [...f.metadata],
    children: (f.type.children ?? []).map(field),
  });
  return {
    fields: schema.fields.map(field),
    metadata: [...schema.metadata],
    dictionaries: [...schema.dictionaries].map(([id, type]) => [id, String(type)]),
  };
}

describe("header strings and schemas", () => {
  it("every fixture schema reads as apache-arrow reads it", () => {
    const dir = new URL("../fixtures/wire/", import.meta.url);
    for (const name of readdirSync(dir).filter((n) => n.endsWith(".bin"))) {
      const bytes = new Uint8Array(readFileSync(new URL(name, dir)));
      for (const span of messageSpans(bytes)) {
        const flatbuffer = bytes.slice(span.start, span.start + span.metadataLength);
        const ours = decodeMessage(flatbuffer);
        const theirs = Message.decode(flatbuffer);
        assert.deepEqual([...ours.metadata], [...theirs.metadata], name);
        if (theirs.headerType === MessageHeader.Schema) {
          assert.deepEqual(shape(ours.header() as Schema), shape(theirs.header() as Schema), name);
        }
      }
    }
  });

  it("a leading U+FEFF survives in field names, in field, schema and batch metadata, and in values", () => {
    const schema = new Schema(
      [
        new Field(`${BOM}value`, new Utf8(), true, new Map([[`${BOM}fk`, `${BOM}fv`]])),
        new Field(`${BOM}s`, new Struct([new Field(`${BOM}inner`, new Int16(), true)]), true),
      ],
      new Map([[`${BOM}sk`, `${BOM}sv`]]),
    );
    const decoded = decodeStreamBytes(encodeSchemaMessage(schema))!.schema;
    assert.equal(decoded.fields[0]!.name, `${BOM}value`);
    assert.deepEqual([...decoded.fields[0]!.metadata], [[`${BOM}fk`, `${BOM}fv`]]);
    assert.equal(decoded.fields[1]!.type.children[0]!.name, `${BOM}inner`);
    assert.deepEqual([...decoded.metadata], [[`${BOM}sk`, `${BOM}sv`]]);
    // Batch metadata, on the lean path (flat columns) and the general one (a struct column).
    const Row = { v: t.utf8() };
    const flat = batchFromColumns(Row, { v: [`${BOM}x`] }, new Map([[`${BOM}k`, `${BOM}v`]]));
    const read = decodeStreamBytes(concatBytes(encodeStream(schemaOf(Row), [flat])))!;
    assert.deepEqual([...read.batches[0]!.metadata], [[`${BOM}k`, `${BOM}v`]]);
    assert.deepEqual(rowsFromBatch(Row, read.batches[0]!), [{ v: `${BOM}x` }]);
    const Nested = { s: t.struct({ i: t.int16() }) };
    const nested = batchFromColumns(Nested, { s: [{ i: 1 }] }, new Map([[`${BOM}k2`, `${BOM}v2`]]));
    const readNested = decodeStreamBytes(concatBytes(encodeStream(schemaOf(Nested), [nested])))!;
    assert.deepEqual([...readNested.batches[0]!.metadata], [[`${BOM}k2`, `${BOM}v2`]]);
  });
});
