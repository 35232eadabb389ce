/* An executable for the elfpatch tests: prints what libgreet returns. */
#include <stdio.h>

const char *greet(void);

int main(void) {
    printf("%s\n", greet());
    return 0;
}
