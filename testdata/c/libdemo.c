/* A small shared library standing in for libcudart & co. */
#include <stdio.h>

const char *demo_version(void) { return "demo 1.0"; }

int demo_add(int a, int b) { return a + b; }
