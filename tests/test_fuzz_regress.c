/*
 * test_fuzz_regress.c — every crash the fuzz targets (tests/fuzz/, docs/fuzzing.md) found, fed
 * again through the public or internal entry point that crashed, with the expected result. The
 * inputs are also in the fuzz corpora (tests/fuzz/corpus/<target>/crash-*), so `make fuzz`
 * replays them too. Under `make asan` these cases show the original memory errors if a fix regresses.
 */
#include "testlib.h"
#include "data/tokenizer_impl.h"

/* fuzz_tokenizer: an HTML reference name holding U+0000 ("&lt\0\0\0"): entity_find compared with
   strncmp, which stopped at the NUL and then read past the end of the table name "lt" (ASan:
   global-buffer-overflow). Python: html.unescape("&lt\0\0\0") == "<\0\0\0" (the longest-prefix
   rule matches "lt", the NULs stay). */
static void test_entity_name_with_nul(void) {
    const uint32_t in[] = {'o', ' ', '&', 'l', 't', 0, 0, 0, ' ', '&', 'a', 'm', 'p', 0, ';', '&', 0, 'x'};
    const uint32_t want[] = {'o', ' ', '<', 0, 0, 0, ' ', '&', 0, ';', '&', 0, 'x'};
    size_t n_in = sizeof in / sizeof in[0], n_want = sizeof want / sizeof want[0];
    uint32_t out[64];
    size_t n = cm_html_unescape(in, n_in, out);
    CHECK(n == n_want, "%zu code points, want %zu", n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++) CHECK(out[i] == want[i], "at %zu: U+%04X, want U+%04X", i, out[i], want[i]);
}

int main(void) {
    RUN(test_entity_name_with_nul);
    return tl_summary("test_fuzz_regress");
}
