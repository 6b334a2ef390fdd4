/* The large-buffer pool (pool.c): adds `exports.pool` = { alloc, configure, trim, stats }. */
#ifndef QUIVER_POOL_H
#define QUIVER_POOL_H
#include <node_api.h>
void pool_init(napi_env env, napi_value exports);
#endif
