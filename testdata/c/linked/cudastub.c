/* lib/stubs/libcuda.so: link-time stand-in for the driver (SONAME libcuda.so.1). */
int cuInit(unsigned int flags) { (void)flags; return 100; }
