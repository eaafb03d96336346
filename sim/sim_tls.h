#ifndef SG_SIM_TLS_H
#define SG_SIM_TLS_H
#include <stddef.h>

/* The certificates `sgrun sim --tls` serves with (see sim_tls.c). */
struct sg_sim_tls {
  char dir[4000];     /* holds ca.pem, ca.key, server.pem, server.key */
  char ca_file[4096]; /* dir/ca.pem: what a client trusts (SGRUN_CA_FILE) */
  char *cert_pem;     /* the server certificate and key, PEM */
  char *key_pem;
  int owned;          /* dir was made here and is removed by sg_sim_tls_release */
};

/* Uses the CA in dir (made there when absent; dir NULL or "" makes a private temporary directory)
 * to sign a fresh server certificate for localhost, 127.0.0.1, ::1 and host. 0, or -1 with a
 * message in err. */
int sg_sim_tls_prepare(struct sg_sim_tls *t, const char *dir, const char *host, char *err, size_t errlen);

/* Frees the PEM strings; removes the directory when it was made by sg_sim_tls_prepare. */
void sg_sim_tls_release(struct sg_sim_tls *t);

#endif
