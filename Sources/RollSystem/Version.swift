import CRollSystem

/// The version of roll, shown by `roll --version`, sent in `hello` and in deploy records.
///
/// It comes from C (`roll_version()` in Sources/CRollSystem/version.c): `make build` and
/// packaging/build-static stamp `git describe` into a generated, git-ignored header there;
/// a plain `swift build` without it reports the base version with "-dev". Read at run time,
/// so a new version recompiles one C file and relinks, and no module keeps a stale copy.
public let rollVersion = String(cString: roll_version())
