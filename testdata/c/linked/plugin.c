/* libplugin.so.1: what libdlopener.so loads at run time. */
int plugin_value(void) { return 3; }
