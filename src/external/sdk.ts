/**
 * Loading a cloud SDK that quiver declares as an optional peer dependency: the S3 and GCS backends
 * import theirs only when a storage is created, so the root package (and anyone not using them)
 * never loads or needs them, and a missing one is reported by name with the command that adds it.
 */

/** An optional SDK a storage backend needs is not installed. */
export class MissingSdkError extends Error {
  /** The npm packages to install. */
  readonly packages: readonly string[];

  constructor(feature: string, packages: readonly string[], cause: unknown) {
    // The cause names the module that was not found.
    super(`${feature} cannot load its SDK (an optional peer dependency): npm install ${packages.join(" ")}`, { cause });
    this.name = "MissingSdkError";
    this.packages = packages;
  }
}

function notFound(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}

/** Runs `load` (the SDK's dynamic imports); a module that cannot be found becomes a `MissingSdkError`. */
export async function loadSdk<T>(feature: string, packages: readonly string[], load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (notFound(err)) throw new MissingSdkError(feature, packages, err);
    throw err;
  }
}
