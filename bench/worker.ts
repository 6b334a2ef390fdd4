/** The bench service served over stdio, for the subprocess figures. */
import { serveStdio } from "../src/transports/stdio/server.js";
import { benchServer } from "./service.js";

await serveStdio(benchServer({}));
