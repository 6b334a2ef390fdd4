/*
 * quiver native addon. This file: shared memory. It maps a file (a /dev/shm segment or any path)
 * read-write and MAP_SHARED, and hands the mapping to JavaScript as an external ArrayBuffer.
 * pool.c adds the large-buffer pool (`exports.pool`); `sendBuffer` sizes a socket's send buffer.
 *
 * Lifetime rule: the mapping belongs to the ArrayBuffer. It is unmapped only by the buffer's
 * finalizer, which V8 runs once no view of it is reachable, so a view can never point at an
 * unmapped page. Closing a segment in JavaScript only drops its reference and closes the fd.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"

/* Throws an Error carrying `errno` (a number) and `syscall`; JavaScript maps the number to a code. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char text[160];
  napi_value msg, error, num, name;
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "syscall", name);
  napi_throw(env, error);
  return NULL;
}

/* Copies a JavaScript string argument into a malloc'd NUL-terminated buffer (NULL on failure). */
static char *get_path(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok || len == 0) return NULL;
  char *path = malloc(len + 1);
  if (path != NULL && napi_get_value_string_utf8(env, value, path, len + 1, &len) != napi_ok) {
    free(path);
    return NULL;
  }
  return path;
}

/* Finalizer of the external ArrayBuffer: the last reference is gone, so the pages can go too. */
static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/*
 * map(path, size, create) -> { buffer, fd, size }
 * create: open O_CREAT|O_EXCL mode 0600 and ftruncate to `size`; otherwise open the existing file
 * and map its whole current length (fstat), whatever `size` says: the caller validates.
 * The fd stays open and is the caller's to close (it is used to re-check the file's length).
 */
static napi_value Map(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result, value;
  double want = 0;
  bool create = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_double(env, argv[1], &want) != napi_ok || napi_get_value_bool(env, argv[2], &create) != napi_ok) {
    napi_throw_type_error(env, NULL, "map(path: string, size: number, create: boolean)");
    return NULL;
  }
  if (!(want >= 0 && want <= 9007199254740991.0)) { /* also rejects NaN */
    napi_throw_range_error(env, NULL, "map: size must be a non-negative safe integer");
    return NULL;
  }
  char *path = get_path(env, argv[0]);
  if (path == NULL) {
    napi_throw_type_error(env, NULL, "map: path must be a non-empty string");
    return NULL;
  }
  int fd = create ? open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    free(path);
    return throw_errno(env, err, "open");
  }
  const char *failed = NULL;
  int err = 0;
  size_t len = 0;
  void *addr = MAP_FAILED;
  struct stat st;
  if (create && ftruncate(fd, (off_t)want) != 0) {
    failed = "ftruncate";
  } else if (fstat(fd, &st) != 0) {
    failed = "fstat";
  } else if ((len = (size_t)st.st_size) == 0) {
    failed = "mmap"; /* mapping nothing is EINVAL; report it as mmap's */
    errno = EINVAL;
  } else if ((addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
    failed = "mmap";
  }
  err = failed != NULL ? errno : 0;
  napi_value buffer;
  if (failed == NULL &&
      napi_create_external_arraybuffer(env, addr, len, unmap, (void *)(uintptr_t)len, &buffer) != napi_ok) {
    munmap(addr, len);
    failed = "napi_create_external_arraybuffer";
  }
  if (failed != NULL) {
    close(fd);
    if (create) unlink(path); /* a segment we could not map is no use to anyone */
    free(path);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) return NULL;
    return throw_errno(env, err != 0 ? err : EINVAL, failed);
  }
  free(path);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "buffer", buffer);
  napi_create_int32(env, fd, &value);
  napi_set_named_property(env, result, "fd", value);
  napi_create_double(env, (double)len, &value);
  napi_set_named_property(env, result, "size", value);
  return result;
}

/* unlink(path): removes the name; existing mappings stay valid until unmapped. */
static napi_value Unlink(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char *path = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      (path = get_path(env, argv[0])) == NULL) {
    napi_throw_type_error(env, NULL, "unlink(path: string)");
    return NULL;
  }
  int rc = unlink(path);
  int err = errno;
  free(path);
  return rc == 0 ? NULL : throw_errno(env, err, "unlink");
}

/*
 * sendBuffer(fd, bytes) -> bytes the kernel now allows (getsockopt, i.e. doubled by Linux).
 * Raises a socket's SO_SNDBUF to at least `bytes` (the kernel caps it at net.core.wmem_max); a
 * larger current value is kept. Node has no API for it on stream sockets.
 */
static napi_value SendBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, bytes = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int32(env, argv[1], &bytes) != napi_ok ||
      fd < 0 || bytes <= 0) {
    napi_throw_type_error(env, NULL, "sendBuffer(fd: number, bytes: number)");
    return NULL;
  }
  int current = 0;
  socklen_t len = sizeof current;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &current, &len) != 0) return throw_errno(env, errno, "getsockopt");
  if (current < bytes) {
    int want = bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) != 0) return throw_errno(env, errno, "setsockopt");
    len = sizeof current;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &current, &len) != 0) return throw_errno(env, errno, "getsockopt");
  }
  napi_value result;
  napi_create_int32(env, current, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "map", NAPI_AUTO_LENGTH, Map, NULL, &fn);
  napi_set_named_property(env, exports, "map", fn);
  napi_create_function(env, "unlink", NAPI_AUTO_LENGTH, Unlink, NULL, &fn);
  napi_set_named_property(env, exports, "unlink", fn);
  napi_create_function(env, "sendBuffer", NAPI_AUTO_LENGTH, SendBuffer, NULL, &fn);
  napi_set_named_property(env, exports, "sendBuffer", fn);
  pool_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
