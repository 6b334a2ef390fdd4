#!/usr/bin/env node
// Removes dist/ so that a build (npm run build, and npm pack / npm publish through prepack)
// starts empty: a file whose source was renamed or deleted can never be packed from an old build.
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
