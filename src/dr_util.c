/* Small shared helpers: the one clock, sleeping, error buffers and kinds, string copies, arrays. */
#include "dr_util.h"

#include "dr_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double dr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dr_sleep_ms(double ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
	nanosleep(&ts, NULL);
}

int dr_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void dr_append(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos = (size_t)n >= len - *pos ? len - 1 : *pos + (size_t)n;
}

char *dr_strdup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int dr_grow(void *ptr, size_t *cap, size_t need, size_t elsize)
{
	void **p = ptr;
	size_t n = *cap ? *cap : 8;
	void *np;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -1;
		n *= 2;
	}
	if (elsize && n > SIZE_MAX / elsize)
		return -1;
	np = realloc(*p, n * elsize);
	if (!np)
		return -1;
	*p = np;
	*cap = n;
	return 0;
}

int dr_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mul = 1ULL << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ULL << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ULL << 30;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1ULL << 40;
		end++;
		break;
	default:
		return -1;
	}
	if (*end == 'i' && mul > 1)
		end++;
	if ((*end == 'B' || *end == 'b') && (mul > 1 || end[1] == '\0'))
		end++;
	if (*end != '\0' || (v && mul > UINT64_MAX / v))
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

bool dr_path_under(const char *p, const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	if (n == 1 && root[0] == '/')
		return p[0] == '/';
	return strncmp(p, root, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

const char *dr_err_name(dr_err e)
{
	static const char *const names[] = {
	        [DR_OK] = "ok",
	        [DR_E_INVALID] = "invalid",
	        [DR_E_TOO_LARGE] = "too-large",
	        [DR_E_FORBIDDEN] = "forbidden",
	        [DR_E_NOT_FOUND] = "not-found",
	        [DR_E_CONFLICT] = "conflict",
	        [DR_E_BUSY] = "busy",
	        [DR_E_UNAVAILABLE] = "unavailable",
	        [DR_E_NOMEM] = "out-of-memory",
	        [DR_E_INTERNAL] = "internal",
	};

	return (unsigned)e < sizeof names / sizeof names[0] && names[e] ? names[e] : "unknown";
}
