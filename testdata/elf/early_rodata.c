/* A shared library whose first section after the program header table is
 * read-only data that nothing but code refers to (early_rodata.ld puts it
 * there), so the table cannot grow in place: elfpatch must shift the file. */
__attribute__((section(".early_rodata"), used))
const char early_banner[] = "hello from libgreet";

const char *greet(void) { return early_banner; }
