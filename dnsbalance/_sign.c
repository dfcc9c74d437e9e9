/* DNSSEC signing in batches with OpenSSL's libcrypto, the GIL released for the whole batch (issue 25).
 *
 * The table build (dnssec/signer.py) queues each RRset's signing input: the RRSIG RDATA less its signature
 * followed by the RRset in canonical form (RFC 4034 3.1.8.1). Key.sign_many() turns a list of them into the
 * RRSIG RDATAs (that head and the signature), with no Python object touched while it signs, so the build's
 * thread goes on walking the table while other threads sign, each on its own core.
 *
 * Signatures: ECDSA P-256 with SHA-256 as RFC 6605 writes it (r and s, 32 octets each, not DER), or Ed25519
 * (RFC 8080, the 64 octets of RFC 8032). The same libcrypto the `cryptography` package calls; this only avoids
 * a Python call, a DER decode in Python and a GIL round trip per signature. Without this module (no compiler
 * or no libssl-dev at install) the signer signs through `cryptography`: the same RRSIGs, more slowly.
 *
 * The private key comes in as PKCS#8 DER and stays in OpenSSL's memory; no method returns or shows it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define SIGNATURE 64 /* both algorithms: 64 octets */

typedef struct {
    PyObject_HEAD
    EVP_PKEY *pkey;
    int ed25519;
} KeyObject;

/* One signature of `data` into out[0..64). Returns 0 on success. `ctx`: for ECDSA a context ready to sign (one
 * per batch); for Ed25519 `ready` is a context initialised to sign, copied into `md` per signature (a one-shot
 * Ed25519 context signs once, and initialising one looks the algorithm up anew: with a copy a signature took
 * 37.6 us here against 45.1; Debian's OpenSSL 3.0 signs Ed25519 slower than the `cryptography` wheel's, 32-34 us,
 * but a batch signs beside the build's walk). */
static int sign_one(KeyObject *key, EVP_PKEY_CTX *ctx, EVP_MD_CTX *ready, EVP_MD_CTX *md, const unsigned char *data,
                    size_t len, unsigned char *out) {
    if (key->ed25519) {
        size_t size = SIGNATURE;
        return EVP_MD_CTX_copy_ex(md, ready) == 1 && EVP_DigestSign(md, out, &size, data, len) == 1 &&
                       size == SIGNATURE
                   ? 0
                   : -1;
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned char der[80]; /* a DER ECDSA-Sig-Value of P-256: 72 octets at most */
    size_t der_len = sizeof der;
    SHA256(data, len, digest);
    if (EVP_PKEY_sign(ctx, der, &der_len, digest, sizeof digest) != 1)
        return -1;
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, out, 32) == 32 && BN_bn2binpad(s, out + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

/* Signs `n` inputs; outputs written head + signature into `out` (stride head + 64). GIL not held. */
static int sign_batch(KeyObject *key, const unsigned char **data, const Py_ssize_t *lengths, Py_ssize_t n,
                      Py_ssize_t head, unsigned char *out) {
    EVP_PKEY_CTX *ctx = NULL;
    EVP_MD_CTX *ready = NULL, *md = NULL;
    int failed = 0;
    if (key->ed25519) {
        ready = EVP_MD_CTX_new();
        md = EVP_MD_CTX_new();
        failed = ready == NULL || md == NULL || EVP_DigestSignInit(ready, NULL, NULL, NULL, key->pkey) != 1;
    } else {
        ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
        failed = ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1;
    }
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        unsigned char *slot = out + i * (head + SIGNATURE);
        memcpy(slot, data[i], (size_t)head);
        failed = sign_one(key, ctx, ready, md, data[i], (size_t)lengths[i], slot + head) != 0;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_MD_CTX_free(ready);
    EVP_MD_CTX_free(md);
    return failed ? -1 : 0;
}

static PyObject *Key_sign_many(KeyObject *self, PyObject *args) {
    PyObject *items;
    Py_ssize_t head;
    if (!PyArg_ParseTuple(args, "O!n:sign_many", &PyList_Type, &items, &head))
        return NULL;
    if (self->pkey == NULL) {
        PyErr_SetString(PyExc_ValueError, "Key() was not given a key");
        return NULL;
    }
    if (head < 0) {
        PyErr_SetString(PyExc_ValueError, "head length is negative");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (n == 0)
        return PyList_New(0);
    /* the list's bytes are kept alive by a copy of the list: the caller may change its list meanwhile */
    PyObject *held = PyList_GetSlice(items, 0, n);
    if (held == NULL)
        return NULL;
    const unsigned char **data = PyMem_Malloc(sizeof *data * (size_t)n);
    Py_ssize_t *lengths = PyMem_Malloc(sizeof *lengths * (size_t)n);
    unsigned char *out = PyMem_Malloc((size_t)n * (size_t)(head + SIGNATURE));
    PyObject *result = NULL;
    if (data == NULL || lengths == NULL || out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(held, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) < head) {
            PyErr_SetString(PyExc_TypeError, "each signing input must be bytes at least as long as its head");
            goto done;
        }
        data[i] = (const unsigned char *)PyBytes_AS_STRING(item);
        lengths[i] = PyBytes_GET_SIZE(item);
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = sign_batch(self, data, lengths, n, head, out);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "libcrypto failed to sign");
        goto done;
    }
    result = PyList_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyObject *rdata = PyBytes_FromStringAndSize((const char *)out + i * (head + SIGNATURE), head + SIGNATURE);
        if (rdata == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, rdata);
    }
done:
    PyMem_Free(data);
    PyMem_Free(lengths);
    PyMem_Free(out);
    Py_DECREF(held);
    return result;
}

static int Key_init(KeyObject *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"der", NULL};
    Py_buffer der;
    if (self->pkey != NULL) { /* signing threads may hold this key: it is never replaced */
        PyErr_SetString(PyExc_TypeError, "a Key is made once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*:Key", keywords, &der))
        return -1;
    const unsigned char *p = der.buf;
    PKCS8_PRIV_KEY_INFO *info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, der.len);
    EVP_PKEY *pkey = info != NULL ? EVP_PKCS82PKEY(info) : NULL;
    PKCS8_PRIV_KEY_INFO_free(info);
    PyBuffer_Release(&der);
    if (pkey == NULL) {
        PyErr_SetString(PyExc_ValueError, "not a PKCS#8 private key libcrypto can read");
        return -1;
    }
    int id = EVP_PKEY_get_base_id(pkey);
    int p256 = 0;
    if (id == EVP_PKEY_EC) {
        char curve[32];
        size_t len = 0;
        p256 = EVP_PKEY_get_utf8_string_param(pkey, "group", curve, sizeof curve, &len) == 1 &&
               strcmp(curve, "prime256v1") == 0;
    }
    if (id != EVP_PKEY_ED25519 && !p256) {
        EVP_PKEY_free(pkey);
        PyErr_SetString(PyExc_ValueError, "only ECDSA P-256 and Ed25519 keys sign");
        return -1;
    }
    self->pkey = pkey;
    self->ed25519 = id == EVP_PKEY_ED25519;
    /* one signature now, with the GIL held: whatever libcrypto caches in the key at first use is made before
     * threads share it */
    unsigned char probe[SIGNATURE];
    const unsigned char *nothing = (const unsigned char *)"";
    Py_ssize_t zero = 0;
    if (sign_batch(self, &nothing, &zero, 1, 0, probe) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "libcrypto failed to sign with this key");
        return -1;
    }
    return 0;
}

static void Key_dealloc(KeyObject *self) {
    EVP_PKEY_free(self->pkey);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Key_repr(KeyObject *self) {
    return PyUnicode_FromString(self->ed25519 ? "<_sign.Key Ed25519>" : "<_sign.Key ECDSA P-256>");
}

static PyMethodDef Key_methods[] = {
    {"sign_many", (PyCFunction)Key_sign_many, METH_VARARGS,
     "sign_many(inputs: list[bytes], head: int) -> list[bytes]: for each input (the RRSIG RDATA less its\n"
     "signature, `head` octets, then the RRset in canonical form), the RRSIG RDATA: that head and the signature\n"
     "of the whole input. The GIL is released while it signs."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsbalance._sign.Key",
    .tp_basicsize = sizeof(KeyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Key(der): a zone's private key (PKCS#8 DER, ECDSA P-256 or Ed25519) held by libcrypto.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Key_init,
    .tp_dealloc = (destructor)Key_dealloc,
    .tp_repr = (reprfunc)Key_repr,
    .tp_methods = Key_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dnsbalance._sign", "DNSSEC signing in batches (see dnsbalance/dnssec/signer.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sign(void) {
    if (PyType_Ready(&KeyType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&KeyType);
    if (PyModule_AddObject(m, "Key", (PyObject *)&KeyType) < 0) {
        Py_DECREF(&KeyType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
