#ifndef SG_CURLMUX_H
#define SG_CURLMUX_H
/* libcurl's multi interface, run on transport threads of its own, each with an event loop.
 * Everything here is called from the main thread, and completion is reported there, through a
 * plain C callback run by the main thread's loop, never from inside curl. */
#include <curl/curl.h>

#include "loop.h"

typedef void (*sg_curl_done_fn)(void *ud, CURLcode result);
typedef struct sg_transfer sg_transfer;

#define SG_CURLMUX_MAX_THREADS 8

/* How many transport threads to start when the user does not say: 2 on a machine of two cores
 * or more, else 1. */
int sg_curlmux_default_threads(void);

/* Starts `threads` transport threads (1 to SG_CURLMUX_MAX_THREADS); completions are delivered
 * through `loop`. Returns 0, or -1 when a thread, its loop or curl could not be set up. */
int sg_curlmux_init(sg_loop *loop, int threads);

/* The number of transport threads running (0 before init). */
int sg_curlmux_threads(void);
void sg_curlmux_cleanup(void);

/* Starts a transfer of easy, whose URL is url and CURLOPT_PROXY proxy (NULL or "" for none);
 * done(ud, result) is called once it ends, unless it is removed first. The handle is the transport's until then: the caller touches neither it nor
 * what its callbacks write. CURLOPT_PRIVATE is used by the multiplexer. Returns the transfer,
 * valid until done is called or it is removed, or NULL when out of memory. */
sg_transfer *sg_curlmux_add(CURL *easy, const char *url, const char *proxy, sg_curl_done_fn done, void *ud);

/* At most n connections to any one host (0: no limit); transfers beyond it wait for one. libcurl
 * keeps one such limit per multi handle, so the last value set governs every host. While a limit
 * is set, each host's transfers go to one thread, which keeps it exactly; transfers to the host
 * that other threads started before any limit was set are not counted until they end. */
void sg_curlmux_set_host_limit(long n);

/* Stops a transfer before done is called, and frees it. Returns once curl no longer holds the
 * handle, so the caller may reuse or free it. */
void sg_curlmux_remove(sg_transfer *transfer);

#endif
