/* libuser.so.1: needs libdep.so.1. */
int dep_value(void);
int user_value(void) { return dep_value() + 1; }
