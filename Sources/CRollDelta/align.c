#include "roll_delta.h"

#include <string.h>

/* The alignment follows the idea of bsdiff (Colin Percival): a rebuilt binary matches its
 * earlier version almost everywhere, but at a position that moves, and with a few bytes
 * changed in every stretch (addresses). Exact matches found through a hash of 16-byte
 * anchors in the basis place the alignment; each alignment is then stretched over the
 * bytes around it as long as at least half of them agree, and what agrees costs a zero
 * byte that zstd then all but removes. */

enum {
    ANCHOR = 16,          /* bytes an anchor match must have */
    LONGEST = 4096,       /* an exact match is measured this far at most */
    SWITCH_GAIN = 8,      /* a new alignment must agree on this many more bytes than the old */
    REACH_BACK = 1024,    /* how far a new alignment is stretched backwards */
    GIVE_UP = 256,        /* a stretch stops once it is this far below its best score */
    EMPTY = 0xFFFFFFFFu,
};

static inline uint64_t anchor_hash(const uint8_t *p) {
    uint64_t a, b;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    return (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
}

/* A table entry: the basis position in the low 27 bits (a patch's basis is below 2^27
 * bytes), and 5 more bits of the anchor's hash above them, so that most anchors that only
 * share a slot are told apart without reading the basis. */
#define POSITION_BITS 27
static inline uint32_t slot_of(uint64_t h, unsigned log) { return (uint32_t)(h >> (64 - log)); }
static inline uint32_t tag_of(uint64_t h, unsigned log) { return (uint32_t)(h >> (64 - log - 5)) & 31; }

static inline long common_prefix(const uint8_t *a, const uint8_t *b, long most) {
    long n = 0;
    while (n + 8 <= most) {
        uint64_t x, y;
        memcpy(&x, a + n, 8);
        memcpy(&y, b + n, 8);
        if (x != y) return n + (__builtin_ctzll(x ^ y) >> 3);
        n += 8;
    }
    while (n < most && a[n] == b[n]) n++;
    return n;
}

static inline size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

typedef struct {
    const uint8_t *basis;
    long basis_len;
    const uint8_t *fresh;   /* the new file, inside buf */
    long fresh_len;
    uint8_t *buf;
    long out;               /* the stream's length so far */
    long header_room;       /* header bytes still allowed before the closing record */
    long cursor;            /* the decoder's basis cursor after the last record */
    roll_align_stats *stats;
} aligner;

/* 1 when new byte p agrees with the basis under `shift` (basis position = p + shift). */
static inline int agrees(const aligner *a, long p, long shift) {
    long q = p + shift;
    return q >= 0 && q < a->basis_len && a->basis[q] == a->fresh[p];
}

/* Appends a record for the new file's bytes from `fresh_at` on: the first `aligned` of them
 * as differences against the basis from `from`, the next `literal` as they are. Returns 0
 * when its header does not fit in the room left. */
static int emit(aligner *a, long from, long fresh_at, long aligned, long literal) {
    if (aligned + literal == 0) return 1;
    uint8_t header[3 * 10];
    long skip = from - a->cursor;
    size_t h = put_varint(header, skip < 0 ? ((uint64_t)(-skip) << 1) - 1 : (uint64_t)skip << 1);
    h += put_varint(header + h, (uint64_t)aligned);
    h += put_varint(header + h, (uint64_t)literal);
    if ((long)h > a->header_room) return 0;
    a->header_room -= (long)h;
    memcpy(a->buf + a->out, header, h);
    a->out += (long)h;
    /* Every write lands at or before the byte it is made from: all the headers together
     * take no more than the room in front of the file. */
    uint8_t *dst = a->buf + a->out;
    const uint8_t *src = a->fresh + fresh_at, *old = a->basis + from;
    for (long i = 0; i < aligned; i++) dst[i] = (uint8_t)(src[i] - old[i]);
    a->out += aligned;
    memmove(a->buf + a->out, src + aligned, (size_t)literal);
    a->out += literal;
    a->cursor = from + aligned;
    a->stats->records++;
    a->stats->aligned += (uint64_t)aligned;
    a->stats->literal += (uint64_t)literal;
    return 1;
}

size_t roll_align_headroom(size_t new_len) { return new_len / 32 + 4096; }

unsigned roll_align_table_log(size_t basis_len) {
    unsigned log2 = basis_len > 1 ? 63 - (unsigned)__builtin_clzll(basis_len) : 0;
    unsigned log = log2 > 2 ? log2 - 2 : 0;
    return log < 12 ? 12 : log > 20 ? 20 : log;
}

size_t roll_align(const uint8_t *basis, size_t basis_len, uint8_t *buf, size_t new_at, size_t new_len,
                  uint32_t *table, roll_align_stats *stats) {
    memset(stats, 0, sizeof *stats);
    /* A basis too large for the table's positions is not used: the file goes as it is. */
    const long n = (long)new_len, m = basis_len < (1UL << POSITION_BITS) ? (long)basis_len : 0;
    aligner a = {basis, m, buf + new_at, n, buf, 0, (long)new_at - ROLL_ALIGN_CLOSING, 0, stats};
    const unsigned table_log = roll_align_table_log(basis_len);
    const long step = (m >> table_log) > 0 ? m >> table_log : 1;
    memset(table, 0xFF, sizeof(uint32_t) << table_log);
    for (long j = 0; j + ANCHOR <= m; j += step) {
        uint64_t h = anchor_hash(basis + j);
        table[slot_of(h, table_log)] = (uint32_t)j | tag_of(h, table_log) << POSITION_BITS;
    }

    long done = 0, done_basis = 0, shift = 0;   /* emitted up to `done`, aligned there to done_basis */
    long scan = 0, len = 0, pos = 0;
    while (scan < n) {
        /* Look for where another alignment agrees better than the current one: `agree`
         * counts the bytes of the candidate match that the current shift also gets. */
        long agree = 0, probe;
        scan += len;
        probe = scan;
        for (; scan < n; scan++) {
            len = 0;
            if (scan + ANCHOR <= n) {
                long at = scan + shift;
                if (at >= 0 && at + ANCHOR <= m && memcmp(a.fresh + scan, basis + at, ANCHOR) == 0) {
                    /* The current alignment holds here. */
                    long most = n - scan < m - at ? n - scan : m - at;
                    len = common_prefix(a.fresh + scan, basis + at, most < LONGEST ? most : LONGEST);
                    pos = at;
                } else if (!agrees(&a, scan, shift)) {
                    /* Another alignment is looked for where this one fails. */
                    uint64_t h = anchor_hash(a.fresh + scan);
                    uint32_t entry = table[slot_of(h, table_log)], j = entry & ((1u << POSITION_BITS) - 1);
                    if (entry != EMPTY && entry >> POSITION_BITS == tag_of(h, table_log) && (long)j + ANCHOR <= m) {
                        long most = n - scan < m - (long)j ? n - scan : m - (long)j;
                        long l = common_prefix(a.fresh + scan, basis + j, most < LONGEST ? most : LONGEST);
                        if (l >= ANCHOR) { len = l; pos = (long)j; }
                    }
                }
            }
            for (; probe < scan + len; probe++) agree += agrees(&a, probe, shift);
            if ((len != 0 && len == agree) || len > agree + SWITCH_GAIN) break;
            agree -= agrees(&a, scan, shift);
        }
        if (len == agree && scan < n) continue;   /* nothing better: step over the match */

        /* Stretch the current alignment forwards from `done`... */
        long forward = 0;
        {
            long score = 0, best = 0, end = scan - done < m - done_basis ? scan - done : m - done_basis;
            for (long i = 0; i < end;) {
                uint64_t x, y;
                if (i + 8 <= end && (memcpy(&x, a.basis + done_basis + i, 8), memcpy(&y, a.fresh + done + i, 8), x == y)) {
                    /* Eight bytes that agree only raise the score: the best is past them. */
                    score += 8;
                    i += 8;
                    if (2 * score - i > 2 * best - forward) { best = score; forward = i; }
                    continue;
                }
                score += a.basis[done_basis + i] == a.fresh[done + i];
                i++;
                if (2 * score - i > 2 * best - forward) { best = score; forward = i; }
                else if ((2 * best - forward) - (2 * score - i) > GIVE_UP) break;
            }
        }
        /* ...and the new one backwards from `scan`. */
        long backward = 0;
        if (scan < n) {
            long score = 0, best = 0;
            for (long i = 1; i <= REACH_BACK && scan - i >= done && pos - i >= 0; i++) {
                score += a.basis[pos - i] == a.fresh[scan - i];
                if (2 * score - i > 2 * best - backward) { best = score; backward = i; }
                else if ((2 * best - backward) - (2 * score - i) > GIVE_UP) break;
            }
        }
        /* Where they overlap, the byte goes to whichever agrees more up to it. */
        if (done + forward > scan - backward) {
            long overlap = done + forward - (scan - backward), score = 0, best = 0, split = 0;
            for (long i = 0; i < overlap; i++) {
                score += a.fresh[done + forward - overlap + i] == a.basis[done_basis + forward - overlap + i];
                score -= a.fresh[scan - backward + i] == a.basis[pos - backward + i];
                if (score > best) { best = score; split = i + 1; }
            }
            forward += split - overlap;
            backward -= split;
        }
        long literal = (scan - backward) - (done + forward);
        if (!emit(&a, done_basis, done, forward, literal)) break;
        done = scan - backward;
        done_basis = pos - backward;
        shift = pos - scan;
    }
    /* What is left (all of it when the headers ran out of room) goes as it is. */
    if (done < n) {
        a.header_room += ROLL_ALIGN_CLOSING;
        emit(&a, a.cursor, done, 0, n - done);
    }
    return (size_t)a.out;
}
