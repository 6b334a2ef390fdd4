// @query-farm/vgi-rpc's published types name a type from its optional peer dependency
// `@momics/iroh-http-node` (HTTP over Iroh), which this project does not install. The interop
// tests never use that transport; this declaration lets the type checker read the peer's
// declarations with `skipLibCheck: false`.
declare module "@momics/iroh-http-node" {
  export type NodeOptions = Readonly<Record<string, unknown>>;
}
