#ifndef ROLL_DELTA_H
#define ROLL_DELTA_H

#include <stddef.h>
#include <stdint.h>

/* What the delta encoder's miss path asks of a signature's match index: is there a
 * block with this weak sum? (RollDelta's MatchIndex builds both tables.)
 *
 * The filter is an array of 2^k 32-bit words. Weak sum w stands for word
 * (w * ROLL_FILTER_INDEX_MUL) >> filter_shift, with filter_shift = 32 - k, and for
 * two bits of it: with g = w * ROLL_FILTER_BITS_MUL, bits g >> 27 and (g >> 22) & 31.
 * A weak sum passes when both its bits are set.
 *
 * The slots are an open-addressed table of 2^m entries, weak << 32 | (entry + 1),
 * 0 when empty; w's first slot is (w * ROLL_SLOT_MUL) >> slot_shift, with
 * slot_shift = 64 - m, and an entry sits at most ROLL_MAX_PROBE slots past its
 * first one. */
#define ROLL_FILTER_INDEX_MUL 0x9E3779B1u
#define ROLL_FILTER_BITS_MUL 0x85EBCA77u
#define ROLL_SLOT_MUL 0x9E3779B97F4A7C15ull
#define ROLL_MAX_PROBE 64

typedef struct {
    const uint32_t *filter;
    const uint64_t *slots;
    uint32_t filter_shift;
    uint32_t slot_shift;
    uint64_t slot_mask;
} roll_match_tables;

/* 1 when this processor and the operating system run AVX2 code, else 0. */
int roll_delta_vector_available(void);

/* From window `start`, whose sums are *a and *b, rolls towards `stop` and returns
 * the first position whose weak sum the slots hold, with *a and *b holding that
 * window's sums; or -1, with *a and *b at `stop`. Reads bytes up to stop + n - 1.
 * The sums handed back are exact in their low 16 bits, all a weak sum is made of.
 * Call only when roll_delta_vector_available() is 1. */
long roll_delta_find_candidate(const uint8_t *bytes, long n, long start, long stop,
                               uint32_t *a, uint32_t *b, const roll_match_tables *tables);

/* Aligned patches (RollWire's AlignedPatch): the new file as runs of byte differences
 * against the basis at a moving offset, and runs of literal bytes. Stream, record by
 * record, each record yielding at least one byte:
 *
 *   zigzag varint skip      the basis cursor moves by skip (it starts at 0)
 *   varint aligned          then `aligned` bytes, each new[i] - basis[cursor + i] (mod 256);
 *                           the cursor moves past them
 *   varint literal          then `literal` bytes of the new file as they are
 *
 * roll_align rewrites a new file of new_len bytes held at buf[new_at ..< new_at + new_len]
 * into that stream from buf[0] on, in place, and returns the stream's length. Its record
 * headers take at most new_at - ROLL_ALIGN_CLOSING bytes (past that, the rest of the file
 * goes as one literal run); new_at is roll_align_headroom(new_len). `table` holds
 * 2^roll_align_table_log(basis_len) entries.
 * The basis is below 2^27 bytes (a patch's window holds it; against a larger one the whole
 * file goes as one literal run), the file at most 2^31. */
#define ROLL_ALIGN_CLOSING 32

typedef struct {
    uint64_t records;
    uint64_t aligned;   /* bytes sent as differences */
    uint64_t literal;   /* bytes sent as they are */
} roll_align_stats;

/* Room in front of a new file for the stream's record headers: new_len / 32 + 4 KiB. */
size_t roll_align_headroom(size_t new_len);

/* The anchor table's size, log2 of its 4-byte entries: as many bytes of table as the basis
 * has, from 2^12 entries up to 2^20 (4 MiB); a larger basis enters every n-th position. */
unsigned roll_align_table_log(size_t basis_len);

size_t roll_align(const uint8_t *basis, size_t basis_len, uint8_t *buf, size_t new_at, size_t new_len,
                  uint32_t *table, roll_align_stats *stats);

#endif
