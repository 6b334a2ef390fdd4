{
  "targets": [
    {
      "target_name": "quiver_shm",
      "sources": ["shm.c", "pool.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra"],
      "xcode_settings": {"OTHER_CFLAGS": ["-std=gnu11", "-O2", "-Wall", "-Wextra"]}
    }
  ]
}
