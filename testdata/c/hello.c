/* A small dynamically linked executable standing in for nvcc, ptxas & co. */
#include <stdio.h>

int main(void) {
    puts("hello from a redist fixture");
    return 0;
}
