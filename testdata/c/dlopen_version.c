/* Load a library with dlopen(RTLD_NOW) and print what one of its version
 * functions returns. Usage: dlopen_version LIB SYMBOL
 *   SYMBOL taking (int *major, int *minor), like nvrtcVersion, or
 *   (int *version), like cudaRuntimeGetVersion: both are called as the first
 *   form; the second argument is simply unused. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIB SYMBOL\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*f)(int *, int *) = (int (*)(int *, int *))dlsym(h, argv[2]);
    if (!f) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    int a = -1, b = -1;
    int rc = f(&a, &b);
    printf("%s rc=%d %d %d\n", argv[2], rc, a, b);
    return rc == 0 ? 0 : 1;
}
