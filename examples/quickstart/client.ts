// The client: starts server.ts as a subprocess worker (same Node, same loader flags) and calls it.
import { fileURLToPath } from "node:url";
import { proxy } from "quiver-rpc";
import { connectSubprocess } from "quiver-rpc/stdio";
import { Calc } from "./protocol.js";

const worker = fileURLToPath(new URL("./server.ts", import.meta.url));
const client = await connectSubprocess(process.execPath, [...process.execArgv, worker]);
const calc = proxy(client, Calc);

console.log(await calc.add({ a: 1, b: 2 })); // 3
for await (const row of await calc.count({ n: 3n })) console.log(row.i); // 0n 1n 2n
const s = await calc.scale({ factor: 2 });
console.log(await s.exchange([{ x: 1 }, { x: 2 }])); // [ { x: 2 }, { x: 4 } ]
await s.close();
await client.close();
