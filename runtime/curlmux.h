#ifndef SG_CURLMUX_H
#define SG_CURLMUX_H
/* libcurl's multi interface driven by the event loop (socket and timer callbacks). Completion is
 * reported through a plain C callback after curl has returned, never from inside curl. */
#include <curl/curl.h>

#include "loop.h"

typedef void (*sg_curl_done_fn)(void *ud, CURLcode result);

int sg_curlmux_init(sg_loop *loop);
void sg_curlmux_cleanup(void);

/* Starts a transfer; done(ud, result) is called once it ends, unless it is removed first.
 * CURLOPT_PRIVATE is used by the multiplexer. Returns 0 or a CURLMcode. */
int sg_curlmux_add(CURL *easy, sg_curl_done_fn done, void *ud);

/* At most n connections to any one host (0: no limit); transfers beyond it wait for one. libcurl
 * keeps one such limit for the whole multi handle, so the last value set governs every host. */
void sg_curlmux_set_host_limit(long n);

/* Stops a transfer that has not completed (safe to call on a completed one). */
void sg_curlmux_remove(CURL *easy);

#endif
