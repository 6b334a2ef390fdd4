/**
 * `conformance.Secondary.v1`: the second application protocol every conformance worker hosts
 * (reference `vgi_rpc/conformance/secondary.py`). It makes three things observable:
 *
 * - routing by (protocol, method): `echo_string` collides with the primary's method and answers
 *   with a prefix, so a mis-route is a wrong value;
 * - a per-binding version gate: it declares no version while the primary declares `2.0.0`;
 * - the error model: `fail` raises the code and kind the caller names with a fixed detail list,
 *   and `fail_oversized` raises details over the 4 KiB cap.
 */
import { ERROR_CODES, type ErrorCode, type ErrorDetail, RpcError, retryInfo } from "../errors.js";
import { defineProtocol, type Implementation, unary } from "../protocol/methods.js";
import { t } from "../protocol/types.js";
import { pyRstrip, pyStrRepr } from "./pyrepr.js";

/** Routing key of the fixture protocol. */
export const SECONDARY_PROTOCOL_NAME = "conformance.Secondary.v1";

/** Pinned digest of the secondary's description, as the reference reports it. */
export const SECONDARY_PROTOCOL_HASH = "58557cf1611546ad22d1c379bc3ce1b04166082f78375e9fc959f0086347eab6";

/** What `echo_string` prepends. */
export const SECONDARY_ECHO_PREFIX = "secondary:";

/** The `ErrorInfo` every `fail` carries. */
export const FAIL_ERROR_INFO: ErrorDetail = Object.freeze({
  "@type": "vgi_rpc.ErrorInfo",
  metadata: Object.freeze({ fixture: SECONDARY_PROTOCOL_NAME }),
});

/** A detail type no client knows, named under this protocol. */
export const PROBE_DETAIL: ErrorDetail = Object.freeze({
  "@type": `${SECONDARY_PROTOCOL_NAME}.Probe`,
  note: "clients ignore detail types they do not know",
});

/** Kind `fail` answers with when asked for a code outside the closed set. */
export const INVALID_CODE_KIND = "invalid_code";

/** Kind `fail_oversized` raises. */
export const OVERSIZED_KIND = "details_oversized";

/** Size of the `ErrorInfo` padding `fail_oversized` carries. */
export const OVERSIZED_PADDING_BYTES = 5000;

/** The exception type the reference's `StatusError` reports on the wire. */
const STATUS_ERROR = "StatusError";

/** The detail array `fail` sends, in wire order: ErrorInfo, RetryInfo when positive, the probe. */
export function expectedFailDetails(retryDelaySeconds: number): ErrorDetail[] {
  const details: ErrorDetail[] = [FAIL_ERROR_INFO];
  if (retryDelaySeconds > 0) details.push(retryInfo(retryDelaySeconds));
  details.push(PROBE_DETAIL);
  return details;
}

export const SecondaryProtocol = defineProtocol(
  SECONDARY_PROTOCOL_NAME,
  { version: "" },
  {
    echo_string: unary({ value: t.utf8() }, t.utf8()),
    fail: unary({ code: t.utf8(), kind: t.utf8(), retry_delay_seconds: t.float64() }, null),
    fail_oversized: unary({}, null),
  },
);

function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

/** The reference implementation of `conformance.Secondary.v1`. */
export function createSecondaryImplementation(): Implementation<typeof SecondaryProtocol> {
  return {
    echo_string: ({ value }) => SECONDARY_ECHO_PREFIX + value,
    fail: ({ code, kind, retry_delay_seconds }) => {
      if (!isErrorCode(code)) {
        throw new RpcError(`${pyStrRepr(code)} is not a canonical error code`, {
          type: STATUS_ERROR,
          code: "INVALID_ARGUMENT",
          kind: INVALID_CODE_KIND,
          details: [
            {
              "@type": "vgi_rpc.BadRequest",
              field_violations: [{ field: "code", description: "must be a canonical code name" }],
            },
          ],
        });
      }
      throw new RpcError(pyRstrip(`${SECONDARY_PROTOCOL_NAME} fail: ${code} ${kind}`), {
        type: STATUS_ERROR,
        code,
        kind,
        details: expectedFailDetails(retry_delay_seconds),
      });
    },
    fail_oversized: () => {
      throw new RpcError(`${SECONDARY_PROTOCOL_NAME} fail_oversized: details exceed 4 KiB`, {
        type: STATUS_ERROR,
        code: "RESOURCE_EXHAUSTED",
        kind: OVERSIZED_KIND,
        details: [
          retryInfo(1),
          { "@type": "vgi_rpc.ErrorInfo", metadata: { padding: "x".repeat(OVERSIZED_PADDING_BYTES) } },
        ],
      });
    },
  };
}
