/*
 * quiver large-buffer pool: memory for large incoming message bodies that stays faulted in.
 *
 * A 30 MB Arrow batch read from a socket needs a buffer of its own (the caller keeps the batch),
 * and a fresh one costs the kernel ~7500 page faults and zeroed pages each time, plus an munmap
 * when the garbage collector frees it: measured, that is more than the read itself. Here each
 * buffer is an external ArrayBuffer over an anonymous mapping whose finalizer (run by V8 once no
 * view of the buffer is reachable) returns the mapping to a free list instead of unmapping it, so
 * the next body of a similar size lands in pages that are already there.
 *
 * Bounds: at most `limit` bytes (and POOL_SLOTS mappings) are kept idle; a freed mapping beyond
 * that is unmapped. `trim()` unmaps every idle mapping. The free list is guarded by a mutex: a
 * finalizer may run on whichever thread V8 frees the buffer on.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "pool.h"

#define POOL_SLOTS 64
/* Mappings are whole multiples of this (and huge-page friendly from HUGE_MIN up). */
#define GRANULE ((size_t)64 * 1024)
#define HUGE_MIN ((size_t)4 * 1024 * 1024)

typedef struct {
  void *ptr;
  size_t cap;
} mapping;

static mapping idle[POOL_SLOTS];
static int idle_count = 0;
static size_t idle_bytes = 0;
static size_t limit = (size_t)128 * 1024 * 1024;
static double hits = 0, misses = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Finalizer: keep the mapping for the next body when the pool has room, else unmap it. */
static void give_back(napi_env env, void *data, void *hint) {
  (void)env;
  size_t cap = (size_t)(uintptr_t)hint;
  pthread_mutex_lock(&lock);
  if (idle_count < POOL_SLOTS && idle_bytes + cap <= limit) {
    idle[idle_count].ptr = data;
    idle[idle_count].cap = cap;
    idle_count++;
    idle_bytes += cap;
    data = NULL;
  }
  pthread_mutex_unlock(&lock);
  if (data != NULL) munmap(data, cap);
}

/* The smallest idle mapping that fits `size` without wasting more than an eighth (plus 2 MiB). */
static void *take_idle(size_t size, size_t *cap) {
  int best = -1;
  pthread_mutex_lock(&lock);
  for (int i = 0; i < idle_count; i++) {
    size_t c = idle[i].cap;
    if (c >= size && c - size <= size / 8 + 2 * 1024 * 1024 && (best < 0 || c < idle[best].cap)) best = i;
  }
  void *p = NULL;
  if (best >= 0) {
    p = idle[best].ptr;
    *cap = idle[best].cap;
    idle_bytes -= *cap;
    idle[best] = idle[--idle_count];
    hits++;
  } else {
    misses++;
  }
  pthread_mutex_unlock(&lock);
  return p;
}

/* alloc(size) -> ArrayBuffer of exactly `size` bytes, contents undefined. */
static napi_value Alloc(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double want = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &want) != napi_ok || !(want >= 1 && want <= 9007199254740991.0)) {
    napi_throw_range_error(env, NULL, "alloc(size): size must be a positive safe integer");
    return NULL;
  }
  size_t size = (size_t)want, cap = 0;
  void *p = take_idle(size, &cap);
  if (p == NULL) {
    cap = (size + GRANULE - 1) & ~(GRANULE - 1);
    p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      napi_throw_error(env, "ENOMEM", "alloc: mmap failed");
      return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (cap >= HUGE_MIN) madvise(p, cap, MADV_HUGEPAGE); /* advice only: fewer, larger faults */
#endif
  }
  if (napi_create_external_arraybuffer(env, p, size, give_back, (void *)(uintptr_t)cap, &result) != napi_ok) {
    munmap(p, cap);
    return NULL;
  }
  return result;
}

/* configure(limitBytes): the most idle bytes kept; mappings over it are unmapped when freed. */
static napi_value Configure(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double want = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &want) != napi_ok || !(want >= 0 && want <= 9007199254740991.0)) {
    napi_throw_range_error(env, NULL, "configure(limit): limit must be a non-negative safe integer");
    return NULL;
  }
  pthread_mutex_lock(&lock);
  limit = (size_t)want;
  pthread_mutex_unlock(&lock);
  return NULL;
}

/* trim() -> bytes unmapped: every idle mapping goes back to the system. */
static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  mapping out[POOL_SLOTS];
  int n;
  size_t bytes;
  pthread_mutex_lock(&lock);
  n = idle_count;
  bytes = idle_bytes;
  for (int i = 0; i < n; i++) out[i] = idle[i];
  idle_count = 0;
  idle_bytes = 0;
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < n; i++) munmap(out[i].ptr, out[i].cap);
  napi_value result;
  napi_create_double(env, (double)bytes, &result);
  return result;
}

/* stats() -> { idleBytes, idleMappings, limit, hits, misses } */
static napi_value Stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, v;
  pthread_mutex_lock(&lock);
  double fields[5] = {(double)idle_bytes, (double)idle_count, (double)limit, hits, misses};
  pthread_mutex_unlock(&lock);
  const char *names[5] = {"idleBytes", "idleMappings", "limit", "hits", "misses"};
  napi_create_object(env, &result);
  for (int i = 0; i < 5; i++) {
    napi_create_double(env, fields[i], &v);
    napi_set_named_property(env, result, names[i], v);
  }
  return result;
}

void pool_init(napi_env env, napi_value exports) {
  napi_value pool, fn;
  napi_create_object(env, &pool);
  napi_create_function(env, "alloc", NAPI_AUTO_LENGTH, Alloc, NULL, &fn);
  napi_set_named_property(env, pool, "alloc", fn);
  napi_create_function(env, "configure", NAPI_AUTO_LENGTH, Configure, NULL, &fn);
  napi_set_named_property(env, pool, "configure", fn);
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, pool, "trim", fn);
  napi_create_function(env, "stats", NAPI_AUTO_LENGTH, Stats, NULL, &fn);
  napi_set_named_property(env, pool, "stats", fn);
  napi_set_named_property(env, exports, "pool", pool);
}
