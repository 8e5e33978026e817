/*
 * A real wasi-libc program for the WASI subset tests (wasm/wasi_c_test.ts).
 * Built by that test with Debian's clang + wasi-libc when clang is present:
 *   clang --target=wasm32-wasi -O2 -o wasi_c.wasm wasi_c.c
 * Reads stdin, prints argv, the environment size, sleeps 20 ms, checks the
 * clock moved, and cats a file below a preopened directory if one is named.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
  char buf[256];
  size_t n = fread(buf, 1, sizeof buf - 1, stdin);
  buf[n] = 0;
  printf("stdin=%s\n", buf);
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  int envc = 0;
  for (char **e = environ; e && *e; e++) envc++;
  printf("environ=%d\n", envc);
  struct timespec t0, t1, pause = {0, 20 * 1000 * 1000};
  clock_gettime(CLOCK_MONOTONIC, &t0);
  nanosleep(&pause, NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("slept>=20ms=%s\n", ms >= 20 ? "yes" : "no");
  if (argc > 1) {
    FILE *f = fopen(argv[1], "r");
    if (!f) {
      printf("open %s: %s\n", argv[1], strerror(errno));
      return 3;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    printf("file=%s\n", buf);
  }
  fprintf(stderr, "done\n");
  return 0;
}
