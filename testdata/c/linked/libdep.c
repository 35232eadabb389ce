/* libdep.so.1: the bottom of the chain; found through a --dep directory or
 * the component's own lib output. */
int dep_value(void) { return 41; }
