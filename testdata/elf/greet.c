/* A shared library for the elfpatch tests: the executable calls greet(). */
const char *greet(void) { return "hello from libgreet"; }
