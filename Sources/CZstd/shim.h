#ifndef ROLL_CZSTD_SHIM_H
#define ROLL_CZSTD_SHIM_H

// The release binary links zstd statically, so its experimental part (the parameters a
// level implies, ZSTD_getCParams) is as fixed as the rest of the library we build with.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

// ZSTD_isError takes a size_t result; Swift sees it as a function already. Nothing else
// of zstd's API is a macro that Swift needs.

#endif
