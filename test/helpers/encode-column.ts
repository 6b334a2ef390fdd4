/** Column values in the cast fixtures' encoding (scripts/make-cast-fixtures.py). */
import { type Data, DataType, Precision } from "apache-arrow";
import { instance as getVisitor } from "apache-arrow/visitor/get";

/** A column's values in the fixture's encoding: integers as strings, floats as the hex of their bits. */
export function encodeColumn(data: Data): unknown[] {
  const out: unknown[] = [];
  const type = data.type;
  for (let i = 0; i < data.length; i++) {
    if (!data.getValid(i) || DataType.isNull(type)) {
      out.push(null);
      continue;
    }
    if (DataType.isFloat(type)) {
      const values = data.values as Uint16Array | Float32Array | Float64Array;
      const width = type.precision === Precision.HALF ? 2 : type.precision === Precision.SINGLE ? 4 : 8;
      const view = new DataView(values.buffer, values.byteOffset + i * width, width);
      const bits =
        width === 2 ? view.getUint16(0, true) : width === 4 ? view.getUint32(0, true) : view.getBigUint64(0, true);
      out.push(bits.toString(16).padStart(width * 2, "0"));
    } else if (DataType.isInt(type)) {
      out.push(String(getVisitor.visit(data, i)));
    } else {
      out.push(getVisitor.visit(data, i));
    }
  }
  return out;
}
