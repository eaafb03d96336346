/* The emulator's certificates (`sgrun sim --tls`): a CA kept in a directory (reused when the
 * directory already holds one, so clients can keep trusting it across restarts) and a server
 * certificate it signs for the loopback names and the listening host, made fresh at every start.
 * Clients trust the CA through SGRUN_CA_FILE, so TLS is exercised with verification on. */
#include "sim_tls.h"
#include "privatedir.h"
#include "atomicfile.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS 3650
#define SERVER_DAYS 90

static const char *const tls_files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void tls_err(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_get_error();
  set_err(err, errlen, "%s: %s", what, e ? ERR_reason_error_string(e) : "OpenSSL error");
  ERR_clear_error();
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return 0;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

/* An unsigned certificate for key's public half named cn, issued by issuer (NULL: itself). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, long days) {
  X509 *cert = X509_new();
  if (!cert) return NULL;
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  int ok = RAND_bytes(serial, sizeof serial) == 1;
  serial[0] &= 0x7f; /* a positive serial */
  ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) != NULL &&
       BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
  BN_free(bn);
  ok = ok && X509_set_version(cert, 2) && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
       X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400L) && X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sgrun emulator", -1, -1, 0) &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  ok = ok && X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  X509 *signer = issuer ? issuer : cert;
  ok = ok && add_ext(cert, signer, NID_subject_key_identifier, "hash") &&
       add_ext(cert, signer, NID_authority_key_identifier, "keyid:always");
  if (!ok) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

static int sign(X509 *cert, EVP_PKEY *key) { return X509_sign(cert, key, EVP_sha256()) > 0; }

static char *pem_of(int (*write)(BIO *, void *), void *obj) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (!bio) return NULL;
  char *out = NULL;
  if (write(bio, obj)) {
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    out = malloc((size_t)n + 1);
    if (out) {
      memcpy(out, data, (size_t)n);
      out[n] = '\0';
    }
  }
  BIO_free(bio);
  return out;
}

static int write_cert(BIO *b, void *x) { return PEM_write_bio_X509(b, x); }
static int write_key(BIO *b, void *k) { return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL); }

/* The directory's files are reached through its open descriptor (/proc/self/fd/N), not its
 * name: the name was checked, but whoever can write its parent could swap a symlink in after the
 * check, and the CA key would then be written where they read it. Without /proc, by name. */
struct tls_dir {
  const char *shown; /* its name, for messages */
  char reached[4096];
};

static void pin_dir(struct tls_dir *d, const char *name, int dfd) {
  d->shown = name;
  snprintf(d->reached, sizeof d->reached, "/proc/self/fd/%d", dfd);
  if (access(d->reached, X_OK) != 0) snprintf(d->reached, sizeof d->reached, "%s", name);
}

static void dir_path(const struct tls_dir *d, const char *file, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/%s", d->reached, file);
}

static int save(const struct tls_dir *d, const char *file, const char *pem, char *err, size_t errlen) {
  char path[4200], why[512];
  dir_path(d, file, path, sizeof path);
  if (pem && sg_write_atomic(path, pem, strlen(pem), why, sizeof why) == 0) return 1;
  set_err(err, errlen, "cannot write %s in %s: %s", file, d->shown, pem ? strerror(errno) : "out of memory");
  return 0;
}

/* Loads ca.pem and ca.key when both exist; 1 loaded, 0 absent, -1 unusable. */
static int load_ca(const struct tls_dir *d, X509 **ca, EVP_PKEY **key, char *err, size_t errlen) {
  char cpath[4200], kpath[4200];
  dir_path(d, "ca.pem", cpath, sizeof cpath);
  dir_path(d, "ca.key", kpath, sizeof kpath);
  if (access(cpath, F_OK) != 0 && access(kpath, F_OK) != 0) return 0;
  FILE *cf = fopen(cpath, "r"), *kf = fopen(kpath, "r");
  if (cf) *ca = PEM_read_X509(cf, NULL, NULL, NULL);
  if (kf) *key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
  if (cf) fclose(cf);
  if (kf) fclose(kf);
  if (*ca && *key && X509_check_private_key(*ca, *key) == 1) return 1;
  ERR_clear_error();
  set_err(err, errlen, "--tls-dir %s: ca.pem and ca.key are not a matching CA certificate and key; "
          "remove them to have a new CA made", d->shown);
  return -1;
}

/* "DNS:localhost,IP:127.0.0.1,IP:::1" plus the listening host when it names one address. */
static void alt_names(const char *host, char *out, size_t outlen) {
  snprintf(out, outlen, "DNS:localhost,IP:127.0.0.1,IP:::1");
  if (!host || !*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
      strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0)
    return;
  unsigned char buf[16];
  int ip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
  size_t n = strlen(out);
  snprintf(out + n, outlen - n, ",%s:%s", ip ? "IP" : "DNS", host);
}

int sg_sim_tls_prepare(struct sg_sim_tls *t, const char *dir, const char *host, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  int dfd;
  if (dir && *dir) {
    /* its CA is what clients are told to trust (SGRUN_CA_FILE): a directory another user can
     * write, or owns, would let them swap in a CA of their own */
    char why[160];
    dfd = sg_open_private_dir(dir, 1, why, sizeof why);
    if (dfd < 0) {
      set_err(err, errlen, "invalid --tls-dir %s: %s; its CA is what clients trust, so it must be a "
              "directory only you can write (chmod 700 it, or choose another)", dir, why);
      return -1;
    }
    snprintf(t->dir, sizeof t->dir, "%s", dir);
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/sgrun-sim-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->dir)) {
      set_err(err, errlen, "cannot create a directory for the TLS files (%s): %s; choose one with --tls-dir",
              t->dir, strerror(errno));
      return -1;
    }
    t->owned = 1;
    dfd = open(t->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
      set_err(err, errlen, "cannot open the directory for the TLS files (%s): %s", t->dir, strerror(errno));
      sg_sim_tls_release(t);
      return -1;
    }
  }
  snprintf(t->ca_file, sizeof t->ca_file, "%s/ca.pem", t->dir);
  struct tls_dir d;
  pin_dir(&d, t->dir, dfd);

  X509 *ca = NULL, *cert = NULL;
  EVP_PKEY *ca_key = NULL, *key = NULL;
  char *ca_pem = NULL, *ca_key_pem = NULL;
  int rc = -1;
  int loaded = load_ca(&d, &ca, &ca_key, err, errlen);
  if (loaded < 0) goto done;
  if (!loaded) {
    ca_key = EVP_EC_gen("P-256");
    ca = ca_key ? make_cert(ca_key, "sgrun emulator CA", NULL, CA_DAYS) : NULL;
    if (!ca || !add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign") || !sign(ca, ca_key)) {
      tls_err(err, errlen, "cannot make the emulator's CA");
      goto done;
    }
    ca_pem = pem_of(write_cert, ca);
    ca_key_pem = pem_of(write_key, ca_key);
    /* the key first: a ca.pem never exists without the key that signs for it */
    if (!save(&d, "ca.key", ca_key_pem, err, errlen) || !save(&d, "ca.pem", ca_pem, err, errlen))
      goto done;
  }
  char names[600];
  alt_names(host, names, sizeof names);
  key = EVP_EC_gen("P-256");
  cert = key ? make_cert(key, "sgrun emulator", ca, SERVER_DAYS) : NULL;
  if (!cert || !add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert, ca, NID_ext_key_usage, "serverAuth") || !add_ext(cert, ca, NID_subject_alt_name, names) ||
      !sign(cert, ca_key)) {
    tls_err(err, errlen, "cannot make the emulator's server certificate");
    goto done;
  }
  t->cert_pem = pem_of(write_cert, cert);
  t->key_pem = pem_of(write_key, key);
  if (!t->cert_pem || !t->key_pem) {
    set_err(err, errlen, "out of memory");
    goto done;
  }
  /* beside the CA, so another local server (nginx in the tests) can present the same identity */
  if (!save(&d, "server.key", t->key_pem, err, errlen) || !save(&d, "server.pem", t->cert_pem, err, errlen))
    goto done;
  rc = 0;
done:
  close(dfd);
  X509_free(ca);
  X509_free(cert);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(key);
  free(ca_pem);
  free(ca_key_pem);
  if (rc != 0) sg_sim_tls_release(t);
  return rc;
}

void sg_sim_tls_release(struct sg_sim_tls *t) {
  if (t->key_pem) OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
  free(t->key_pem);
  free(t->cert_pem);
  t->key_pem = t->cert_pem = NULL;
  if (t->owned) {
    char path[4096];
    for (size_t i = 0; i < sizeof tls_files / sizeof *tls_files; i++) {
      snprintf(path, sizeof path, "%s/%s", t->dir, tls_files[i]);
      unlink(path);
    }
    rmdir(t->dir);
    t->owned = 0;
  }
}
