/* MPI in unit tests: MPI_Init and MPI_Finalize under AddressSanitizer (LEAKS_OFF, LEAKS_ON). */
#ifndef DR_TESTMPI_H
#define DR_TESTMPI_H

/* Under AddressSanitizer: Open MPI keeps allocations past MPI_Finalize (some in components it has
 * unloaded), which LeakSanitizer would report, so MPI_Init and MPI_Finalize run with leak tracking
 * off (the code under test does not). And the __tls_get_addr interceptor of GCC <= 13's runtime
 * misreads the dynamic TLS of Open MPI's components, which crashes LeakSanitizer's tracer at exit
 * ("Tracer caught signal 11"), so it is turned off for this program. */
#if defined(__SANITIZE_ADDRESS__)
#define DR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DR_TEST_ASAN 1
#endif
#endif
#ifdef DR_TEST_ASAN
#include <sanitizer/lsan_interface.h>
#define LEAKS_OFF() __lsan_disable()
#define LEAKS_ON()  __lsan_enable()
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "intercept_tls_get_addr=0";
}
#else
#define LEAKS_OFF() ((void)0)
#define LEAKS_ON()  ((void)0)
#endif

#endif
