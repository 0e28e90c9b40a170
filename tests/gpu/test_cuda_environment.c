/* The CUDA backend's reader of its environment switches (kernels/cuda/environment.h): defaults,
 * accepted values, and the one-line refusal naming the variable, the value and what it takes.
 * Host code only: runs without a GPU. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/environment.h"
#include "tests/unit/check.h"

static const char *const PATHS[] = {"auto", "grouped", "loop"};
static const char *const SWITCH[] = {"on", "off"};

int main(void) {
    char why[128];
    int choice = -1;

    unsetenv("CAIRN_TEST_SWITCH");
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, why, sizeof why) == 0);
    CHECK(choice == 0);
    setenv("CAIRN_TEST_SWITCH", "", 1);
    choice = -1;
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, why, sizeof why) == 0);
    CHECK(choice == 0);
    setenv("CAIRN_TEST_SWITCH", "loop", 1);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, why, sizeof why) == 0);
    CHECK(choice == 2);
    setenv("CAIRN_TEST_SWITCH", "off", 1);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", SWITCH, 2, &choice, why, sizeof why) == 0);
    CHECK(choice == 1);

    /* refused: one line naming the variable, the value and every accepted value */
    setenv("CAIRN_TEST_SWITCH", "Loop", 1);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, why, sizeof why) == -1);
    CHECK_MSG(strcmp(why, "CAIRN_TEST_SWITCH=Loop: expected auto, grouped or loop") == 0, "%s",
              why);
    setenv("CAIRN_TEST_SWITCH", "maybe", 1);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", SWITCH, 2, &choice, why, sizeof why) == -1);
    CHECK_MSG(strcmp(why, "CAIRN_TEST_SWITCH=maybe: expected on or off") == 0, "%s", why);

    /* a short buffer holds a truncated, terminated message; no buffer is fine too */
    char small[16];
    memset(small, 'x', sizeof small);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, small, sizeof small) ==
          -1);
    CHECK(memchr(small, '\0', sizeof small) != NULL &&
          strncmp(small, "CAIRN_TEST_SWIT", sizeof small - 1) == 0);
    CHECK(cuda_environment_choice("CAIRN_TEST_SWITCH", PATHS, 3, &choice, NULL, 0) == -1);
    return check_summary("test_cuda_environment");
}
