#include "roll_delta.h"

#if defined(__x86_64__)

#include <cpuid.h>
#include <immintrin.h>

int roll_delta_vector_available(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned osxsave = 1u << 27, avx = 1u << 28;
    if ((ecx & (osxsave | avx)) != (osxsave | avx)) return 0;
    /* The kernel must save the YMM registers on a switch: XCR0 bits 1 and 2. */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx & (1u << 5)) != 0;
}

static inline int in_filter(uint32_t w, const roll_match_tables *t) {
    uint32_t h = w * ROLL_FILTER_INDEX_MUL;
    uint32_t g = w * ROLL_FILTER_BITS_MUL;
    uint32_t mask = (1u << (g >> 27)) | (1u << ((g >> 22) & 31));
    return (t->filter[h >> t->filter_shift] & mask) == mask;
}

static inline int in_slots(uint32_t w, const roll_match_tables *t) {
    uint64_t s = ((uint64_t)w * ROLL_SLOT_MUL) >> t->slot_shift;
    for (int i = 0; i < ROLL_MAX_PROBE; i++) {
        uint64_t v = t->slots[s];
        if (v == 0) return 0;
        if ((uint32_t)(v >> 32) == w) return 1;
        s = (s + 1) & t->slot_mask;
    }
    return 0;
}

static inline uint32_t pack(uint32_t a, uint32_t b) { return (b << 16) | (a & 0xFFFF); }

/* Inclusive prefix sums over the sixteen 16-bit lanes. */
__attribute__((target("avx2")))
static inline __m256i prefix16(__m256i x) {
    x = _mm256_add_epi16(x, _mm256_slli_si256(x, 2));
    x = _mm256_add_epi16(x, _mm256_slli_si256(x, 4));
    x = _mm256_add_epi16(x, _mm256_slli_si256(x, 8));
    /* Word 7 (the low half's total) into every word of the high half. */
    const __m256i word7 = _mm256_set1_epi16(0x0F0E);
    __m256i carry = _mm256_shuffle_epi8(_mm256_permute2x128_si256(x, x, 0x08), word7);
    return _mm256_add_epi16(x, carry);
}

/* Word 15 (the total) into every word. */
__attribute__((target("avx2")))
static inline __m256i last16(__m256i x) {
    return _mm256_shuffle_epi8(_mm256_permute4x64_epi64(x, 0xFF), _mm256_set1_epi16(0x0706));
}

/* Windows rolled per pass: the weak sums of a stretch go to a buffer first, then
 * through the filter. The two loops have nothing in common but the buffer, so
 * neither waits on the other's latencies. The filter words are read with eight
 * plain loads: on the 2-core test machine vpgatherdd cost as much as the rest of
 * the loop together, and the loads version ran 10-15 % faster (5 % on another
 * day). Measured there, 256 MiB against the signature of an unrelated
 * 256 MiB (`roll delta` to /dev/null): one window at a time 0.87-1.1 s, eight per
 * step with a gather 0.62-0.66 s, eight per step in 32-bit lanes 0.51-0.57 s on one
 * day and 0.53-0.56 s on another, when sixteen per step in 16-bit lanes took
 * 0.48-0.51 s. The filter is most of what is left: without it the whole command took
 * a third of that. Testing the filter words one window at a time in scalar code from stored
 * words and masks, and a third bit per weak sum (fewer false hits to the slots),
 * both ran within noise of this. */
enum { STRETCH = 512 };

__attribute__((target("avx2")))
long roll_delta_find_candidate(const uint8_t *bytes, long n, long start, long stop,
                               uint32_t *ioA, uint32_t *ioB, const roll_match_tables *t) {
    uint32_t a = *ioA, b = *ioB;
    long q = start;
    {
        uint32_t w = pack(a, b);
        if (in_filter(w, t) && in_slots(w, t)) return q;
    }
    const __m256i iota = _mm256_setr_epi16(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    const __m256i vn = _mm256_set1_epi16((short)n);
    const __m256i indexMul = _mm256_set1_epi32((int)ROLL_FILTER_INDEX_MUL);
    const __m256i bitsMul = _mm256_set1_epi32((int)ROLL_FILTER_BITS_MUL);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i low5 = _mm256_set1_epi32(31);
    const __m128i indexShift = _mm_cvtsi32_si128((int)t->filter_shift);
    uint32_t weak[STRETCH] __attribute__((aligned(32)));

    /* The weak sum of window q + 1 + j goes to weak[j]. With d = x[q+n+t] - x[q+t]
     * and D its prefix sums, a_j = a + D_j; with E the prefix sums of
     * D_t - n * x[q+t], b_j = b + (j + 1) * a + E_j. A weak sum is made of the low
     * 16 bits of a and b only, and those depend on nothing but the low 16 bits of
     * what they are made from, so the sums are kept in 16-bit lanes: sixteen
     * windows a step. The broadcast a and b are carried from one step to the next. */
    __m256i va = _mm256_set1_epi16((short)a);
    __m256i vb = _mm256_set1_epi16((short)b);
    while (q + 16 <= stop) {
        long steps = (stop - q) / 16;
        if (steps > STRETCH / 16) steps = STRETCH / 16;
        for (long s = 0; s < steps; s++) {
            const uint8_t *p = bytes + q + 16 * s;
            __m256i out = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
            __m256i in = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + n)));
            __m256i d = prefix16(_mm256_sub_epi16(in, out));
            __m256i e = prefix16(_mm256_sub_epi16(d, _mm256_mullo_epi16(vn, out)));
            __m256i sumA = _mm256_add_epi16(va, d);
            __m256i sumB = _mm256_add_epi16(_mm256_add_epi16(vb, _mm256_mullo_epi16(va, iota)), e);
            /* Interleaved, a word of each: windows 0-3 and 8-11, then 4-7 and 12-15. */
            __m256i lo = _mm256_unpacklo_epi16(sumA, sumB), hi = _mm256_unpackhi_epi16(sumA, sumB);
            _mm256_store_si256((__m256i *)(weak + 16 * s), _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_store_si256((__m256i *)(weak + 16 * s + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
            vb = _mm256_add_epi16(_mm256_add_epi16(vb, _mm256_slli_epi16(va, 4)), last16(e));
            va = _mm256_add_epi16(va, last16(d));
        }
        for (long s = 0; s < 2 * steps; s++) {
            __m256i w = _mm256_load_si256((const __m256i *)(weak + 8 * s));
            __m256i index = _mm256_srl_epi32(_mm256_mullo_epi32(w, indexMul), indexShift);
            __m256i g = _mm256_mullo_epi32(w, bitsMul);
            __m256i bits = _mm256_or_si256(
                _mm256_sllv_epi32(one, _mm256_srli_epi32(g, 27)),
                _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32(g, 22), low5)));
            __m128i il = _mm256_castsi256_si128(index), ih = _mm256_extracti128_si256(index, 1);
            uint64_t i01 = (uint64_t)_mm_cvtsi128_si64(il), i23 = (uint64_t)_mm_extract_epi64(il, 1);
            uint64_t i45 = (uint64_t)_mm_cvtsi128_si64(ih), i67 = (uint64_t)_mm_extract_epi64(ih, 1);
            const uint32_t *f = t->filter;
            uint64_t w01 = f[(uint32_t)i01] | (uint64_t)f[i01 >> 32] << 32;
            uint64_t w23 = f[(uint32_t)i23] | (uint64_t)f[i23 >> 32] << 32;
            uint64_t w45 = f[(uint32_t)i45] | (uint64_t)f[i45 >> 32] << 32;
            uint64_t w67 = f[(uint32_t)i67] | (uint64_t)f[i67 >> 32] << 32;
            __m256i words = _mm256_setr_epi64x((long long)w01, (long long)w23, (long long)w45, (long long)w67);
            __m256i ok = _mm256_cmpeq_epi32(_mm256_and_si256(words, bits), bits);
            unsigned hits = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(ok));
            while (hits) {
                int j = __builtin_ctz(hits);
                hits &= hits - 1;
                uint32_t found = weak[8 * s + j];
                if (in_slots(found, t)) {
                    *ioA = found & 0xFFFF;
                    *ioB = found >> 16;
                    return q + 8 * s + 1 + j;
                }
            }
        }
        q += 16 * steps;
    }
    a = (uint32_t)_mm256_cvtsi256_si32(va) & 0xFFFF;
    b = (uint32_t)_mm256_cvtsi256_si32(vb) & 0xFFFF;
    uint32_t nn = (uint32_t)n;
    while (q < stop) {
        uint32_t o = bytes[q];
        a = a - o + bytes[q + n];
        b = b - nn * o + a;
        q += 1;
        uint32_t w = pack(a, b);
        if (in_filter(w, t) && in_slots(w, t)) {
            *ioA = a;
            *ioB = b;
            return q;
        }
    }
    *ioA = a;
    *ioB = b;
    return -1;
}

#else

int roll_delta_vector_available(void) { return 0; }

long roll_delta_find_candidate(const uint8_t *bytes, long n, long start, long stop,
                               uint32_t *a, uint32_t *b, const roll_match_tables *tables) {
    (void)bytes; (void)n; (void)start; (void)stop; (void)a; (void)b; (void)tables;
    return -1;
}

#endif
