/* HTTP API (libmicrohttpd, a thread per connection): job submission, status, frames, health,
 * metrics, and the dashboard (GET /, /ui/...) with its long-poll of changes (GET /updates).
 * It touches only the job table, never MPI. */
#ifndef DR_HTTP_H
#define DR_HTTP_H

#include "dr_jobs.h"
#include "dr_jobspec.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct dr_http_cfg {
	const char *listen; /* "ADDR:PORT" (IPv4 or [IPv6]), e.g. "127.0.0.1:4000" */
	/* required as "Authorization: Bearer <token>" (health and the dashboard's static files
	 * exempt); NULL or "" = none */
	const char *token;
	bool read_only;           /* --http during a batch: POST and DELETE answer 405 */
	dr_jobspec_limits limits; /* for POST /render (copied: need not outlive dr_http_start) */
	double rate_per_s; /* requests per second per client address (token bucket); 0 = off */
	double rate_burst;
	/* HTTPS: PEM files of the server's certificate (chain) and private key; both or neither.
	 * Without them a non-loopback address is served in clear text, with a warning. */
	const char *tls_cert;
	const char *tls_key;
	bool overwrite; /* --overwrite: a job into a directory made from other settings is fine */
	/* Host names (comma-separated; "*" = any) a request's Host header may carry besides IP
	 * addresses, "localhost" and this machine's name; NULL = none. Without a token, or with
	 * this list, any other Host is refused (403): a DNS-rebound name must not reach a server
	 * with no token. */
	const char *allow_hosts;
} dr_http_cfg;

typedef struct dr_http dr_http;

/* Shortest token a non-loopback listener accepts. */
#define DR_HTTP_TOKEN_MIN 16

/* Start serving. Refuses (NULL with ERR) a non-loopback address without a token (or with
 * one shorter than DR_HTTP_TOKEN_MIN), an address that
 * does not parse, or one that cannot be bound (the message names it and the system error), and
 * TLS files that cannot be read or a libmicrohttpd built without TLS. */
dr_http *dr_http_start(const dr_http_cfg *cfg, dr_jobs *jobs, char *err, size_t errlen);

/* Stop serving and free; long-polls waiting for a change are answered at once. NULL is fine. */
void dr_http_stop(dr_http *h);

/* The HTTP status an error of KIND is answered with (DR_OK: 200). The only place where a kind
 * becomes a status: 400 invalid, 403 forbidden, 404 not found, 409 conflict, 413 too large,
 * 429 busy (with Retry-After), 503 unavailable, 500 otherwise. */
unsigned dr_http_status(dr_err kind);

/* Every route, one "METHOD PATH" a line (e.g. "GET /jobs/<id>/video"; HEAD is left out:
 * every GET route answers it), into BUF: for the test that compares them with the user docs.
 * The number of lines, or -1 when BUF is too small. */
int dr_http_routes(char *buf, size_t len);

/* Port actually bound (useful with port 0). */
int dr_http_port(const dr_http *h);

#endif
