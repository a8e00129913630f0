/* fuzz_capture.c - libFuzzer target for the capture loader and the analysis:
 * any input must load or be refused cleanly.  Built with -DTALLY_FUZZ=ON and clang
 * (src/tools/CMakeLists.txt); not part of the test suite:
 *   ./fuzz_capture -max_total_time=60 corpus/ */
#include <stddef.h>
#include <stdint.h>

#include "analyze.h"
#include "capture_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tallyX_capture cap;
    char err[256];
    if (tallyX_capture_parse(data, size, &cap, err, sizeof err) != 0)
        return 0;
    tallyX_analysis a;
    if (tallyX_analyze(&cap, &a) == 0)
        tallyX_analysis_free(&a);
    tallyX_capture_free(&cap);
    return 0;
}
