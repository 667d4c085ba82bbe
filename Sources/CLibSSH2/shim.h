#ifndef ROLL_CLIBSSH2_SHIM_H
#define ROLL_CLIBSSH2_SHIM_H
// libssh2 with inline wrappers for what Swift cannot import: its function-like macros.
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static inline LIBSSH2_SESSION *_Nullable roll_ssh_session_new(void) {
    return libssh2_session_init_ex(NULL, NULL, NULL, NULL);
}

/// The first bytes a peer sent during the handshake, and how its side ended if it did.
typedef struct {
    unsigned char bytes[256];
    size_t length;
    /// 1 once the peer closed the connection (end of stream or a reset).
    int closed;
} roll_ssh_first_bytes;

/// libssh2's receive, also keeping the first bytes in the session's abstract (a
/// roll_ssh_first_bytes, while ``roll_ssh_record_first_bytes`` has it there).
static inline ssize_t roll_ssh_recording_recv(libssh2_socket_t fd, void *buffer, size_t length, int flags, void **abstract) {
    ssize_t n = recv(fd, buffer, length, flags);
    roll_ssh_first_bytes *seen = abstract ? (roll_ssh_first_bytes *)*abstract : NULL;
    if (n < 0) {
        int e = errno;
        if (seen && e == ECONNRESET) seen->closed = 1;
        // libssh2 takes a negated errno, EAGAIN for "try again".
        return e == EWOULDBLOCK ? -EAGAIN : -e;
    }
    if (seen && n == 0) seen->closed = 1;
    if (seen && n > 0 && seen->length < sizeof seen->bytes) {
        size_t room = sizeof seen->bytes - seen->length;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(seen->bytes + seen->length, buffer, k);
        seen->length += k;
    }
    return n;
}

/// Starts keeping what the peer sends in `seen`; returns the receive function to restore.
static inline void *_Nullable roll_ssh_record_first_bytes(LIBSSH2_SESSION *_Nonnull s, roll_ssh_first_bytes *_Nonnull seen) {
    *libssh2_session_abstract(s) = seen;
    return libssh2_session_callback_set(s, LIBSSH2_CALLBACK_RECV, (void *)roll_ssh_recording_recv);
}

/// Gives libssh2 back its own receive function; `seen` is no longer used.
static inline void roll_ssh_stop_recording(LIBSSH2_SESSION *_Nonnull s, void *_Nullable previous) {
    libssh2_session_callback_set(s, LIBSSH2_CALLBACK_RECV, previous);
    *libssh2_session_abstract(s) = NULL;
}

static inline int roll_ssh_disconnect(LIBSSH2_SESSION *_Nonnull s, const char *_Nonnull why) {
    return libssh2_session_disconnect_ex(s, SSH_DISCONNECT_BY_APPLICATION, why, "");
}

static inline LIBSSH2_CHANNEL *_Nullable roll_ssh_open_session(LIBSSH2_SESSION *_Nonnull s, unsigned int window) {
    return libssh2_channel_open_ex(s, "session", sizeof("session") - 1, window,
                                   LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
}

static inline int roll_ssh_exec(LIBSSH2_CHANNEL *_Nonnull c, const char *_Nonnull command, unsigned int length) {
    return libssh2_channel_process_startup(c, "exec", sizeof("exec") - 1, command, length);
}

static inline ssize_t roll_ssh_read(LIBSSH2_CHANNEL *_Nonnull c, int stream, void *_Nonnull buf, size_t n) {
    return libssh2_channel_read_ex(c, stream, (char *)buf, n);
}

static inline ssize_t roll_ssh_write(LIBSSH2_CHANNEL *_Nonnull c, const void *_Nonnull buf, size_t n) {
    return libssh2_channel_write_ex(c, 0, (const char *)buf, n);
}

static inline int roll_ssh_password(LIBSSH2_SESSION *_Nonnull s, const char *_Nonnull user, unsigned int userLength,
                                    const char *_Nonnull password, unsigned int passwordLength) {
    return libssh2_userauth_password_ex(s, user, userLength, password, passwordLength, NULL);
}

/// Answers every keyboard-interactive prompt with the password stored as the session's abstract.
static inline void roll_ssh_kbd_answer(const char *name, int name_len, const char *instruction, int instruction_len,
                                       int num_prompts, const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                                       LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract) {
    (void)name; (void)name_len; (void)instruction; (void)instruction_len; (void)prompts;
    const char *password = abstract ? (const char *)*abstract : NULL;
    for (int i = 0; i < num_prompts; i++) {
        size_t n = password ? strlen(password) : 0;
        responses[i].text = (char *)malloc(n + 1);
        if (responses[i].text) {
            if (n) memcpy(responses[i].text, password, n);
            responses[i].text[n] = 0;
            responses[i].length = (unsigned int)n;
        } else {
            responses[i].length = 0;
        }
    }
}

static inline int roll_ssh_keyboard_interactive(LIBSSH2_SESSION *_Nonnull s, const char *_Nonnull user,
                                                unsigned int userLength, const char *_Nonnull password) {
    void **abstract = libssh2_session_abstract(s);
    void *saved = *abstract;
    *abstract = (void *)password;
    int rc = libssh2_userauth_keyboard_interactive_ex(s, user, userLength, roll_ssh_kbd_answer);
    *abstract = saved;
    return rc;
}

static inline int roll_ssh_pubkey_file(LIBSSH2_SESSION *_Nonnull s, const char *_Nonnull user, unsigned int userLength,
                                       const char *_Nullable publicKey, const char *_Nonnull privateKey,
                                       const char *_Nullable passphrase) {
    return libssh2_userauth_publickey_fromfile_ex(s, user, userLength, publicKey, privateKey, passphrase);
}

static inline LIBSSH2_SFTP_HANDLE *_Nullable roll_sftp_open(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull path,
                                                            unsigned long flags, long mode) {
    return libssh2_sftp_open_ex(sftp, path, (unsigned int)strlen(path), flags, mode, LIBSSH2_SFTP_OPENFILE);
}

static inline int roll_sftp_mkdir(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull path, long mode) {
    return libssh2_sftp_mkdir_ex(sftp, path, (unsigned int)strlen(path), mode);
}

static inline int roll_sftp_rename(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull from, const char *_Nonnull to) {
    return libssh2_sftp_rename_ex(sftp, from, (unsigned int)strlen(from), to, (unsigned int)strlen(to),
                                  LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE);
}

static inline int roll_sftp_unlink(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull path) {
    return libssh2_sftp_unlink_ex(sftp, path, (unsigned int)strlen(path));
}

static inline int roll_sftp_chmod(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull path, unsigned long mode) {
    LIBSSH2_SFTP_ATTRIBUTES attrs;
    memset(&attrs, 0, sizeof attrs);
    attrs.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
    attrs.permissions = mode;
    return libssh2_sftp_stat_ex(sftp, path, (unsigned int)strlen(path), LIBSSH2_SFTP_SETSTAT, &attrs);
}

static inline int roll_sftp_realpath(LIBSSH2_SFTP *_Nonnull sftp, const char *_Nonnull path, char *_Nonnull out, unsigned int n) {
    return libssh2_sftp_symlink_ex(sftp, path, (unsigned int)strlen(path), out, n, LIBSSH2_SFTP_REALPATH);
}

#endif
