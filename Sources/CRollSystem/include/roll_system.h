#ifndef ROLL_SYSTEM_H
#define ROLL_SYSTEM_H

// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module does
// not define; each shim is the plain call.

#include <spawn.h>
#include <sys/types.h>

// renameat2 flag: swap the two names atomically.
#define ROLL_RENAME_EXCHANGE 2

int roll_syncfs(int fd);
ssize_t roll_copy_file_range(int fd_in, int fd_out, size_t len);
// renameat2(2); flags such as RENAME_EXCHANGE (2) and RENAME_NOREPLACE (1).
int roll_renameat2(int olddirfd, const char *_Nonnull oldpath, int newdirfd, const char *_Nonnull newpath, unsigned int flags);

// pipe2(2) with O_CLOEXEC, so a spawned child inherits only what it is given.
int roll_pipe_cloexec(int fds[_Nonnull 2]);

// Turns O_DIRECT on or off for an open file (fcntl F_SETFL): writes then go from the
// caller's buffer to the disk without a copy into the page cache. -1 with errno EINVAL
// where the file system does not do direct I/O.
int roll_set_direct(int fd, int on);
/* 1 when fd writes straight to the disk (O_DIRECT), 0 when not, -1 on error. */
int roll_is_direct(int fd);

// ioctl FICLONE: `dst` shares `src`'s blocks (copy on write), where the file system can
// (btrfs, XFS); -1 with errno elsewhere.
int roll_clone_file(int dst, int src);

// posix_spawn_file_actions_addchdir_np: the child starts in `path`.
int roll_spawn_addchdir(posix_spawn_file_actions_t *_Nonnull actions, const char *_Nonnull path);

// posix_spawn_file_actions_addclosefrom_np: the child gets no descriptor from `lowfd` up.
int roll_spawn_addclosefrom(posix_spawn_file_actions_t *_Nonnull actions, int lowfd);

// Marks every open descriptor from `lowfd` up close-on-exec (close_range(2), or each
// entry of /proc/self/fd where that call is missing).
int roll_cloexec_from(int lowfd);

// roll's version: the one scripts/stamp-version wrote into the ignored roll_version.h,
// or "<base>-dev" for a build without it (see version.c).
const char *_Nonnull roll_version(void);

// Ctrl-C and SIGTERM for a client. By default a signal prints the text last given to
// roll_interrupt_say on stderr and exits with 130 at once. While a deferral is held
// (roll_interrupt_defer(+1) ... (-1)), the first signal is only counted, for the code that
// holds it to act on (roll_interrupt_requested); a second one exits at once.
void roll_interrupt_install(void);

void roll_interrupt_say(const char *_Nullable text);
void roll_interrupt_defer(int delta);
int roll_interrupt_requested(void);

// The allocator's thresholds fixed where roll's buffers sit: blocks from 64 KiB up are
// mapped on their own and unmapped when freed, and free memory at the top of the heap goes
// back to the system above 128 KiB (glibc's defaults move the first up to 32 MiB as large
// blocks are freed, so a freed buffer stays resident), and two arenas for roll's threads.
void roll_tune_allocator(void);

#endif
