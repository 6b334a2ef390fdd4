// HTTP with bearer-token auth: one process serves a protocol over HTTP and calls it, first with a
// valid token, then with a wrong one (refused with a 401 before any method runs).
import { authenticated, bind, createServer, defineProtocol, proxy, t, unary } from "quiver-rpc";
import { bearerAuthenticateStatic, connectHttp, HttpError, listenHttp } from "quiver-rpc/http";

const Greeter = defineProtocol(
  "acme.Greeter.v1",
  { version: "1.0.0" },
  {
    greet: unary({ name: t.utf8() }, t.utf8()),
  },
);

const server = createServer({
  protocols: [bind(Greeter, { greet: ({ name }, ctx) => `hello ${name}, from ${ctx.auth.principal}'s session` })],
});

// In production, read tokens from a secret store: an unset variable ("undefined") makes the
// factory throw an AuthConfigError at start-up instead of accepting it.
const token = process.env.GREETER_TOKEN ?? "s3cret-token-for-the-example";
const http = await listenHttp(server, {
  port: 0, // a free port
  authenticate: bearerAuthenticateStatic({
    tokens: { [token]: authenticated("acme", "alice", {}, { scheme: "bearer" }) },
  }),
});

const client = connectHttp(http.url, { headers: { Authorization: `Bearer ${token}` } });
console.log(await proxy(client, Greeter).greet({ name: "Bob" }));

const intruder = connectHttp(http.url, { headers: { Authorization: "Bearer wrong" } });
try {
  await proxy(intruder, Greeter).greet({ name: "Mallory" });
} catch (err) {
  if (!(err instanceof HttpError)) throw err;
  console.log(`refused: HTTP ${err.status}, ${err.code}, reason ${err.authReason}`);
}

await client.close();
await intruder.close();
await http.close();
