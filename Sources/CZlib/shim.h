#ifndef ROLL_CZLIB_SHIM_H
#define ROLL_CZLIB_SHIM_H

#include <zlib.h>

// deflateInit and inflateInit are macros that pass the library version and struct size;
// Swift cannot call macros, so these shims do.
static inline int roll_deflate_init(z_streamp _Nonnull strm, int level, int gzip) {
    return deflateInit2(strm, level, Z_DEFLATED, gzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY);
}

static inline int roll_inflate_init(z_streamp _Nonnull strm) {
    return inflateInit2(strm, 15);
}

// A gzip stream (header and trailer checked by zlib).
static inline int roll_inflate_init_gzip(z_streamp _Nonnull strm) {
    return inflateInit2(strm, 15 + 16);
}

#endif
