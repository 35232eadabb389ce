/* bin/app: needs libuser.so.1 (and through it libdep.so.1). */
#include <stdio.h>
int user_value(void);
int main(void) {
    printf("app says %d\n", user_value());
    return 0;
}
