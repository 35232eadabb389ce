/* Loads argv[1] with dlopen(RTLD_NOW) and prints "ok", or the loader's
 * error and exits 1. Used to check that patched libraries still load. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    puts("ok");
    return 0;
}
