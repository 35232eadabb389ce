/* Compile a CUDA kernel to PTX with NVRTC loaded by dlopen(RTLD_NOW): proves
 * a patched libnvrtc.so still loads, finds libnvrtc-builtins through its
 * RUNPATH, and works. No GPU needed. Usage: nvrtc_compile LIBNVRTC */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*create_t)(void **, const char *, const char *, int, const char *const *, const char *const *);
typedef int (*compile_t)(void *, int, const char *const *);
typedef int (*size_t_fn)(void *, size_t *);
typedef int (*get_t)(void *, char *);
typedef int (*log_t)(void *, char *);

static const char *kernel =
    "extern \"C\" __global__ void saxpy(float a, float *x, float *y, int n) {\n"
    "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "  if (i < n) y[i] = a * x[i] + y[i];\n"
    "}\n";

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBNVRTC\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    create_t create = (create_t)dlsym(h, "nvrtcCreateProgram");
    compile_t compile = (compile_t)dlsym(h, "nvrtcCompileProgram");
    size_t_fn ptx_size = (size_t_fn)dlsym(h, "nvrtcGetPTXSize");
    get_t get_ptx = (get_t)dlsym(h, "nvrtcGetPTX");
    if (!create || !compile || !ptx_size || !get_ptx) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    void *prog = NULL;
    if (create(&prog, kernel, "saxpy.cu", 0, NULL, NULL) != 0) {
        fprintf(stderr, "nvrtcCreateProgram failed\n");
        return 1;
    }
    const char *opts[] = {"--gpu-architecture=compute_80"};
    int rc = compile(prog, 1, opts);
    if (rc != 0) {
        fprintf(stderr, "nvrtcCompileProgram failed: %d\n", rc);
        return 1;
    }
    size_t n = 0;
    ptx_size(prog, &n);
    char *ptx = malloc(n);
    get_ptx(prog, ptx);
    int ok = strstr(ptx, ".entry saxpy") != NULL;
    printf("ptx %s (%zu bytes)\n", ok ? "has .entry saxpy" : "lacks the kernel", n);
    return ok ? 0 : 1;
}
