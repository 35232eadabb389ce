/* libdlopener.so: declares, in an FDO .note.dlopen, that it dlopen()s
 * libplugin.so.1 (https://systemd.io/ELF_DLOPEN_METADATA/). */
__asm__(".pushsection .note.dlopen,\"a\",@note\n"
        ".balign 4\n"
        ".long 4\n"
        ".long 2f - 1f\n"
        ".long 0x407c0c0a\n"
        ".asciz \"FDO\"\n"
        "1: .asciz \"[{\\\"feature\\\":\\\"plugin\\\",\\\"soname\\\":[\\\"libplugin.so.1\\\"],\\\"priority\\\":\\\"required\\\"}]\"\n"
        "2: .balign 4\n"
        ".popsection\n");
int dlopener_value(void) { return 7; }
