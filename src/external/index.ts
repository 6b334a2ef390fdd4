/** External storage: pointer batches, the server's externalization policy, the client's resolver. */
export {
  checkPolicy,
  DEFAULT_EXTERNALIZE_THRESHOLD,
  type ExternalCompression,
  type ExternalizePolicy,
  ExternalRef,
  externalizeBatch,
  externalizeTurn,
  publishExternal,
  serializeStream,
  type UploadSignal,
  uploadIpc,
} from "./externalize.js";
export { ExternalFetchError, type FetchOptions, httpsOnly, loopbackOnly, type UrlValidator } from "./fetch.js";
export {
  isPointerBatch,
  LOCATION_FETCH_MS_KEY,
  LOCATION_KEY,
  LOCATION_SHA256_KEY,
  LOCATION_SOURCE_KEY,
  makePointerBatch,
  redactUrl,
  totalBufferSize,
} from "./pointer.js";
export { ExternalResolver } from "./resolve.js";
export {
  type ContentEncoding,
  type ExternalStorage,
  ExternalStorageError,
  FakeStorage,
  type UploadUrl,
  type UploadUrlProvider,
} from "./storage.js";
