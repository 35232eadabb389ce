/* libnamer.so.1: dlopen()s libplugin.so.1 by a name held only as a string
 * (no DT_NEEDED, no .note.dlopen), as cuDNN loads libcublasLt.so.13.
 * namer() returns the plugin's value, or -1 when it cannot be loaded. */
#include <dlfcn.h>

static const char plugin[] = "libplugin.so.1";

int namer(void) {
    void *h = dlopen(plugin, RTLD_NOW);
    if (!h) return -1;
    int (*value)(void) = (int (*)(void))dlsym(h, "plugin_value");
    return value ? value() : -2;
}
