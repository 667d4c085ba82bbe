#ifndef ROLL_CZSTD_SHIM_H
#define ROLL_CZSTD_SHIM_H

#include <zstd.h>

// ZSTD_isError takes a size_t result; Swift sees it as a function already. Nothing else
// of zstd's API is a macro that Swift needs, so this header only names the library.

#endif
