/* A library without libc, so it can be linked for any class with `ld`
 * alone (used for ELF32 fixtures on an x86-64 host). */
int counter;

int bump(int by) {
    counter += by;
    return counter;
}
