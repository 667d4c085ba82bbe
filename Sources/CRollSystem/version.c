// roll's version, behind RollSystem's `rollVersion`.
//
// scripts/stamp-version (run by `make build` and packaging/build-static) writes the version
// from `git describe` into roll_version.h beside this file, which git ignores, so stamping
// changes no tracked file. A plain `swift build` of a clean clone has no such header and
// gets ROLL_BASE_VERSION "-dev".
//
// A C macro rather than Swift source or a -D flag: a new version recompiles this one file
// and relinks; a flag given to every compile would rebuild every module, dependencies
// included. RollSystem calls roll_version() at run time, so no other module holds a copy.
//
// Clang's dependency list names only the headers a compile opened, so a build made before
// roll_version.h existed would not notice it appear: stamp-version touches this file
// whenever it writes the header.
#if __has_include("roll_version.h")
#include "roll_version.h"
#endif
#include "roll_system.h"

// The release being worked towards; stamp-version reads it for a commit with no tag.
#define ROLL_BASE_VERSION "0.1.0"

#ifndef ROLL_VERSION
#define ROLL_VERSION ROLL_BASE_VERSION "-dev"
#endif

const char *roll_version(void) { return ROLL_VERSION; }
