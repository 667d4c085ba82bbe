#define _GNU_SOURCE
#include <malloc.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <spawn.h>
#include <stdio.h>
#include <unistd.h>
#include "roll_system.h"

int roll_syncfs(int fd) { return syncfs(fd); }

ssize_t roll_copy_file_range(int fd_in, int fd_out, size_t len) {
    return copy_file_range(fd_in, NULL, fd_out, NULL, len, 0);
}

int roll_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

int roll_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int roll_set_direct(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, on ? (flags | O_DIRECT) : (flags & ~O_DIRECT));
}

int roll_is_direct(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : (flags & O_DIRECT) != 0;
}

int roll_clone_file(int dst, int src) {
    return ioctl(dst, FICLONE, src);
}

int roll_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int roll_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowfd);
}

int roll_cloexec_from(int lowfd) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned int)lowfd, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0) return 0;
#endif
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) return -1;
    int self = dirfd(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        int fd = atoi(e->d_name);
        if (fd < lowfd || fd == self) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(dir);
    return 0;
}

static volatile sig_atomic_t interrupts = 0;
static int deferred = 0;
static const char *volatile interrupt_text = NULL;

static void on_interrupt(int signo) {
    (void)signo;
    interrupts++;
    if (interrupts == 1 && __atomic_load_n(&deferred, __ATOMIC_SEQ_CST) > 0) return;
    const char *text = interrupt_text;
    if (text != NULL) {
        ssize_t ignored = write(2, text, strlen(text));
        (void)ignored;
    }
    _exit(130);
}

void roll_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/// Every text ever set, newest first. None is freed (the handler may be reading one); a
/// push sets a handful. Linked here, they stay reachable rather than leak.
struct said { struct said *earlier; char text[]; };
static struct said *said_texts = NULL;
static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;

void roll_interrupt_say(const char *text) {
    if (text == NULL) {
        interrupt_text = NULL;
        return;
    }
    size_t n = strlen(text) + 1;
    struct said *s = malloc(sizeof *s + n);
    if (s == NULL) return;
    memcpy(s->text, text, n);
    pthread_mutex_lock(&said_lock);
    s->earlier = said_texts;
    said_texts = s;
    interrupt_text = s->text;
    pthread_mutex_unlock(&said_lock);
}

void roll_interrupt_defer(int delta) { __atomic_add_fetch(&deferred, delta, __ATOMIC_SEQ_CST); }

int roll_interrupt_requested(void) { return interrupts; }

void roll_tune_allocator(void) {
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    mallopt(M_ARENA_MAX, 2);
}
