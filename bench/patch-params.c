// Encodes every pair of a list as roll's patches are encoded (Sources/RollWire/Patch.swift:
// the old file as a prefix, a window over both, long-distance matching, the tables bounded),
// with the level and bounds given, and prints the bytes and the seconds spent encoding.
//   patch-params PAIRS LEVEL HASHLOG CHAINLOG LDM_MIN_MATCH LDM_BUCKET_LOG [ALIGN]
// PAIRS: lines "old<TAB>new[<TAB>label]". HASHLOG and CHAINLOG bound what zstd's level
// implies (as roll's encoder does); HASHLOG with an s (20s) bounds the hash table also to
// the new file's size, from 2^18 entries up, as roll does; LDM_MIN_MATCH 64 and
// LDM_BUCKET_LOG 3 are zstd's own. ALIGN 1: an ELF file against an ELF basis is aligned
// first, as roll's aligned patches are (Sources/RollWire/AlignedPatch.swift, with roll's own
// aligner, Sources/CRollDelta/align.c, compiled in), and the patch is of the aligned stream.
// Output: "bytes=N seconds=S files=F aligned=A" (seconds: the encoding, aligning included,
// on one core).
#define ZSTD_STATIC_LINKING_ONLY
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "roll_delta.h"

static const int window_log_max = 27, long_match_table_log = 19;

static const void *map(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { perror(path); exit(1); }
    *size = (size_t)st.st_size;
    const void *p = *size ? mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0) : "";
    if (p == MAP_FAILED) { perror(path); exit(1); }
    close(fd);
    return p;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void check(size_t rc, const char *what) {
    if (ZSTD_isError(rc)) { fprintf(stderr, "%s: %s\n", what, ZSTD_getErrorName(rc)); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: %s PAIRS LEVEL HASHLOG CHAINLOG LDM_MIN_MATCH LDM_BUCKET_LOG [ALIGN]\n", argv[0]);
        return 64;
    }
    int align = argc == 8 && atoi(argv[7]) == 1;
    int aligned_files = 0;
    FILE *list = fopen(argv[1], "r");
    if (!list) { perror(argv[1]); return 1; }
    int level = atoi(argv[2]);
    unsigned hash_max = (unsigned)atoi(argv[3]), chain_log = (unsigned)atoi(argv[4]);
    int scaled = strchr(argv[3], 's') != NULL;
    int min_match = atoi(argv[5]), bucket_log = atoi(argv[6]);
    char line[8192];
    unsigned long long total = 0;
    double seconds = 0;
    int files = 0;
    while (fgets(line, sizeof line, list)) {
        char *old_path = strtok(line, "\t\n"), *new_path = strtok(NULL, "\t\n");
        if (!old_path || !new_path) continue;
        size_t old_size, new_size;
        const void *old = map(old_path, &old_size), *new = map(new_path, &new_size);
        int window_log = 10;
        while (window_log <= window_log_max && ((size_t)1 << window_log) < old_size + new_size) window_log++;
        if (window_log > window_log_max) continue;  // roll sends such a file as a block delta
        double started = now();
        // AlignedPatch: room for the record headers in front of the file, the anchor table
        // sized by the basis, ELF files only.
        size_t headroom = roll_align_headroom(new_size);
        unsigned char *buffer = NULL;
        const void *input = new;
        size_t input_size = new_size;
        if (align && old_size >= 4 && new_size >= 4 && memcmp(old, "\177ELF", 4) == 0 && memcmp(new, "\177ELF", 4) == 0) {
            int w = 10;
            while (w <= window_log_max && ((size_t)1 << w) < old_size + new_size + headroom) w++;
            if (w <= window_log_max) {
                uint32_t *table = malloc(sizeof(uint32_t) << roll_align_table_log(old_size));
                buffer = malloc(headroom + new_size);
                memcpy(buffer + headroom, new, new_size);
                roll_align_stats stats;
                input_size = roll_align(old, old_size, buffer, headroom, new_size, table, &stats);
                input = buffer;
                free(table);
                window_log = 10;
                while (((size_t)1 << window_log) < old_size + input_size) window_log++;
                aligned_files++;
            }
        }
        unsigned hash_log = hash_max;
        if (scaled) {  // 4-byte entries: no more table than file
            unsigned log = 0;
            while (((size_t)2 << log) <= input_size) log++;
            unsigned cap = log >= 20 ? log - 2 : 18;
            if (cap < hash_log) hash_log = cap;
        }
        ZSTD_compressionParameters implied = ZSTD_getCParams(level, input_size, old_size);
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level), "level");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, window_log), "windowLog");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, (int)(implied.hashLog < hash_log ? implied.hashLog : hash_log)), "hashLog");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_chainLog, (int)(implied.chainLog < chain_log ? implied.chainLog : chain_log)), "chainLog");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1), "ldm");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_ldmMinMatch, min_match), "ldmMinMatch");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_ldmBucketSizeLog, bucket_log), "ldmBucketSizeLog");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_ldmHashLog, window_log - 7 > long_match_table_log ? long_match_table_log : 0), "ldmHashLog");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1), "contentSize");
        check(ZSTD_CCtx_setParameter(cctx, ZSTD_c_stableInBuffer, 1), "stableInBuffer");
        check(ZSTD_CCtx_setPledgedSrcSize(cctx, input_size), "pledgedSrcSize");
        check(ZSTD_CCtx_refPrefix(cctx, old, old_size), "refPrefix");
        static char out[256 << 10];
        ZSTD_inBuffer in = {input, input_size, 0};
        size_t left;
        do {
            ZSTD_outBuffer sink = {out, sizeof out, 0};
            left = ZSTD_compressStream2(cctx, &sink, &in, ZSTD_e_end);
            check(left, new_path);
            total += sink.pos;
        } while (left != 0);
        seconds += now() - started;
        files++;
        free(buffer);
        ZSTD_freeCCtx(cctx);
        if (old_size) munmap((void *)old, old_size);
        if (new_size) munmap((void *)new, new_size);
    }
    printf("bytes=%llu seconds=%.3f files=%d aligned=%d\n", total, seconds, files, aligned_files);
    return 0;
}
