/* The native UDP fast path (issue 27): the per-datagram work of answer/fastpath.py's cache hit, in C.
 *
 * What it holds:
 *   AnswerTable  the compiled table's answer sets (compiler/answers.py) as C views of their own buffers:
 *                the wire bytes, the variants' starts and cumulative weights; on a signed zone (issue 25)
 *                also its signed entries, one per (owner name, answer set) signed: the set numbers of its
 *                variants and the presigned RRSIG record of each distinct set (ZoneSignatures.sets). Built
 *                once per table generation in the supervisor before answerers fork; it copies nothing and a
 *                query reads only raw memory (no reference count of the table's objects is touched), so the
 *                pages stay shared by every answerer.
 *   Shapes       an answerer's replies by query shape: the query less its ID, its name lower-cased, and
 *                the client address -> everything of the reply but the ID, the question (the query's own,
 *                so its letter case, 0x20 included) and the variant drawn. Filled by the Python fast path
 *                at the first query of a shape (it parses, locates and decides; learn() copies its
 *                Prepared), so the native path answers exactly the queries the Python path answers, with
 *                the same bytes. A DO answer on a signed zone names its signed entry by index and gets the
 *                drawn variant's RRSIG record after its records (no signature bytes in a shape). Counts per
 *                (answer set, variant) are kept here and drained into the query counters (stats/counters.py)
 *                when they fold.
 *   Batch        a UDP socket's recvmmsg/sendmmsg buffers (the GIL released while the kernel works), each
 *                reply from the address asked (IP_PKTINFO, the rule of udpio.reply_pktinfo); datagrams the
 *                shapes do not know go, in order, to a Python callable (the fast path, else the pipeline).
 *
 * The draw calls the answering pipeline's random() (random.Random), in datagram order, once per answer:
 * the random source of the Python path, so the same source gives the same bytes on both paths.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define KEY_MAX 600      /* a shape key: client (1 + 16) + query less its ID; longer queries are not kept */
#define QUERY_MAX 512    /* queries longer than this are the Python path's */
#define MAX_COUNT 31     /* records per answer at most a shape can hold heads for */
#define HEAD 10          /* a reply header less its ID */
#define SLOT 65536       /* bytes per datagram buffer */
#define SEEN 4096        /* shapes missed once remembered (a flood of one-off shapes is never learnt) */
#define MISSED 0         /* reply_known: a shape not known, the first time */
#define REPEATED (-2)    /* reply_known: a shape not known, missed before: learn it */

/* ------------------------------------------------------------------------------------------------ */
/* AnswerTable                                                                                      */

typedef struct {
    const unsigned char *wire;
    Py_ssize_t wire_len;
    const uint32_t *starts;   /* variants + 1 */
    const double *cumulative; /* variants */
    Py_ssize_t variants;
    double total;
    Py_ssize_t record;
} Sets;

/* A signed zone's RRSIG records of one answer set under one owner name (DO queries): the record of the set a
 * variant belongs to is records[numbers[variant]]. Pointers into the bytes of ZoneSignatures.sets' tuples,
 * which the table keeps alive: nothing is copied, and a query touches no reference count. */
typedef struct {
    Py_ssize_t set;                 /* the answer set, an index in the table */
    const uint32_t *numbers;        /* per variant of the set: its set number (variants.sets) */
    Py_ssize_t nrecords;            /* distinct sets */
    const unsigned char **records;  /* per set number: the RRSIG record */
    uint32_t *lengths;
    Py_ssize_t longest;
} Signed;

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    Sets *sets;
    Py_buffer *views; /* 2 per set: starts, cumulative */
    PyObject *keep;   /* the answer sets (and so their buffers) */
    Py_ssize_t nsigned;
    Signed *signed_sets;
    Py_buffer *signed_views; /* 1 per signed entry: its set numbers */
    PyObject *signed_keep;   /* the signed entries given (and so the records' bytes) */
} AnswerTable;

static void table_dealloc(AnswerTable *self) {
    if (self->views != NULL) {
        for (Py_ssize_t i = 0; i < 2 * self->count; i++)
            if (self->views[i].obj != NULL)
                PyBuffer_Release(&self->views[i]);
        PyMem_Free(self->views);
    }
    PyMem_Free(self->sets);
    if (self->signed_views != NULL) {
        for (Py_ssize_t i = 0; i < self->nsigned; i++)
            if (self->signed_views[i].obj != NULL)
                PyBuffer_Release(&self->signed_views[i]);
        PyMem_Free(self->signed_views);
    }
    if (self->signed_sets != NULL) {
        for (Py_ssize_t i = 0; i < self->nsigned; i++) {
            PyMem_Free(self->signed_sets[i].records);
            PyMem_Free(self->signed_sets[i].lengths);
        }
        PyMem_Free(self->signed_sets);
    }
    Py_XDECREF(self->signed_keep);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int view_of(PyObject *owner, const char *name, const char *format, Py_ssize_t itemsize, Py_buffer *view) {
    PyObject *found = PyObject_GetAttrString(owner, name);
    if (found == NULL)
        return -1;
    int failed = PyObject_GetBuffer(found, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS);
    Py_DECREF(found);
    if (failed)
        return -1;
    if (view->itemsize != itemsize || view->format == NULL || strcmp(view->format, format) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected an array of '%s'", name, format);
        return -1;
    }
    return 0;
}

static int signed_init(AnswerTable *self, PyObject *given);

static int table_init(AnswerTable *self, PyObject *args, PyObject *kwds) {
    PyObject *given, *signed_given = NULL;
    if (!PyArg_ParseTuple(args, "O|O", &given, &signed_given))
        return -1;
    if (self->keep != NULL) {
        PyErr_SetString(PyExc_TypeError, "an AnswerTable is made once");
        return -1;
    }
    PyObject *keep = PySequence_Tuple(given);
    if (keep == NULL)
        return -1;
    Py_ssize_t count = PyTuple_GET_SIZE(keep);
    self->keep = keep;
    self->sets = PyMem_Calloc(count ? count : 1, sizeof(Sets));
    self->views = PyMem_Calloc(count ? 2 * count : 1, sizeof(Py_buffer));
    if (self->sets == NULL || self->views == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *answers = PyTuple_GET_ITEM(keep, i);
        Sets *sets = &self->sets[i];
        self->count = i + 1; /* views so far are released on failure */
        PyObject *wire = PyObject_GetAttrString(answers, "wire");
        if (wire == NULL)
            return -1;
        if (!PyBytes_Check(wire)) {
            Py_DECREF(wire);
            PyErr_SetString(PyExc_TypeError, "wire: expected bytes");
            return -1;
        }
        sets->wire = (const unsigned char *)PyBytes_AS_STRING(wire);
        sets->wire_len = PyBytes_GET_SIZE(wire);
        Py_DECREF(wire); /* the answer set holds it, and `keep` the answer set */
        if (view_of(answers, "starts", "I", 4, &self->views[2 * i]) < 0 ||
            view_of(answers, "cumulative", "d", 8, &self->views[2 * i + 1]) < 0)
            return -1;
        sets->starts = self->views[2 * i].buf;
        sets->cumulative = self->views[2 * i + 1].buf;
        sets->variants = self->views[2 * i + 1].len / 8;
        if (self->views[2 * i].len / 4 != sets->variants + 1) {
            PyErr_SetString(PyExc_ValueError, "starts and cumulative disagree");
            return -1;
        }
        PyObject *total = PyObject_GetAttrString(answers, "total");
        PyObject *record = total != NULL ? PyObject_GetAttrString(answers, "record") : NULL;
        if (record == NULL) {
            Py_XDECREF(total);
            return -1;
        }
        sets->total = PyFloat_AsDouble(total);
        sets->record = PyLong_AsSsize_t(record);
        Py_DECREF(total);
        Py_DECREF(record);
        if (PyErr_Occurred())
            return -1;
        if (sets->variants > 0 && (Py_ssize_t)sets->starts[sets->variants] * sets->record > sets->wire_len) {
            PyErr_SetString(PyExc_ValueError, "answer records past the end of the wire");
            return -1;
        }
    }
    return signed_given != NULL ? signed_init(self, signed_given) : 0;
}

/* The signed entries: a sequence of (answer set index, set number per variant (array 'I'), RRSIG record per
 * set number (a tuple of bytes)), checked whole here so that a query only indexes. */
static int signed_init(AnswerTable *self, PyObject *given) {
    PyObject *keep = PySequence_Tuple(given);
    if (keep == NULL)
        return -1;
    Py_ssize_t count = PyTuple_GET_SIZE(keep);
    self->signed_keep = keep;
    self->signed_sets = PyMem_Calloc(count ? count : 1, sizeof(Signed));
    self->signed_views = PyMem_Calloc(count ? count : 1, sizeof(Py_buffer));
    if (self->signed_sets == NULL || self->signed_views == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(keep, i);
        Signed *entry = &self->signed_sets[i];
        self->nsigned = i + 1; /* what is made so far is released on failure */
        PyObject *numbers, *records;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "nOO!", &entry->set, &numbers, &PyTuple_Type, &records)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a signed entry: (set index, set numbers, records)");
            return -1;
        }
        if (entry->set < 0 || entry->set >= self->count) {
            PyErr_SetString(PyExc_IndexError, "a signed entry of no answer set");
            return -1;
        }
        Py_buffer *view = &self->signed_views[i];
        if (PyObject_GetBuffer(numbers, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "I") != 0) {
            PyErr_SetString(PyExc_TypeError, "set numbers: expected an array of 'I'");
            return -1;
        }
        const Sets *sets = &self->sets[entry->set];
        if (view->len / 4 != sets->variants) {
            PyErr_SetString(PyExc_ValueError, "set numbers and variants disagree");
            return -1;
        }
        entry->numbers = view->buf;
        entry->nrecords = PyTuple_GET_SIZE(records);
        entry->records = PyMem_Calloc(entry->nrecords ? entry->nrecords : 1, sizeof(const unsigned char *));
        entry->lengths = PyMem_Calloc(entry->nrecords ? entry->nrecords : 1, sizeof(uint32_t));
        if (entry->records == NULL || entry->lengths == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t r = 0; r < entry->nrecords; r++) {
            PyObject *record = PyTuple_GET_ITEM(records, r);
            if (!PyBytes_Check(record) || PyBytes_GET_SIZE(record) > 4096) {
                PyErr_SetString(PyExc_TypeError, "records: expected bytes of at most 4096");
                return -1;
            }
            entry->records[r] = (const unsigned char *)PyBytes_AS_STRING(record);
            entry->lengths[r] = (uint32_t)PyBytes_GET_SIZE(record);
            if (entry->lengths[r] > entry->longest)
                entry->longest = entry->lengths[r];
        }
        for (Py_ssize_t v = 0; v < sets->variants; v++) {
            if ((Py_ssize_t)entry->numbers[v] >= entry->nrecords) {
                PyErr_SetString(PyExc_ValueError, "a variant of a set without its record");
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *table_signed(AnswerTable *self, PyObject *unused) { return PyLong_FromSsize_t(self->nsigned); }

static PyMethodDef table_methods[] = {
    {"signed", (PyCFunction)table_signed, METH_NOARGS, "signed() -> how many signed entries the table holds"},
    {NULL, NULL, 0, NULL},
};

static Py_ssize_t table_len(AnswerTable *self) { return self->count; }

static PySequenceMethods table_as_sequence = {.sq_length = (lenfunc)table_len};

static PyTypeObject AnswerTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsbalance._native.AnswerTable",
    .tp_doc = PyDoc_STR("AnswerTable(answer_sets, signed=()): C views of a compiled table's answer sets, index by "
                        "position; signed: (set index, set numbers, RRSIG records) entries, index by position"),
    .tp_basicsize = sizeof(AnswerTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)table_init,
    .tp_dealloc = (destructor)table_dealloc,
    .tp_as_sequence = &table_as_sequence,
    .tp_methods = table_methods,
};

/* ------------------------------------------------------------------------------------------------ */
/* Shapes                                                                                           */

typedef struct {
    uint64_t hash;
    unsigned char *blob; /* key, then heads ((MAX_COUNT + 1) x HEAD, for answers), opt, fixed */
    uint32_t keylen;
    int32_t set;         /* index in the table; -1: a fixed reply (NXDOMAIN, NODATA) */
    int32_t sig;         /* DO on a signed zone: the table's signed entry whose RRSIG follows the answer; -1: none */
    int32_t slot;        /* counters */
    uint32_t heads_mask; /* which answer sizes have a head */
    uint32_t optlen, fixedlen;
} Entry;

typedef struct {
    uint64_t queries;
    uint64_t *variants; /* per variant of its answer set; NULL for fixed replies */
    Py_ssize_t n;
    int dirty;
} Slot;

typedef struct {
    PyObject_HEAD
    AnswerTable *table;
    Entry *entries;
    size_t capacity; /* a power of two */
    size_t used;
    size_t limit;    /* shapes kept; emptied when full, as the Python path's cache */
    Slot *slots;
    Py_ssize_t nslots, slots_cap;
    uint64_t hits;
    uint64_t seen[SEEN]; /* hashes of shapes missed once, direct-mapped: a second miss is worth learning */
} Shapes;

static uint64_t hash_bytes(const unsigned char *data, size_t size) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static void entries_free(Entry *entries, size_t capacity) {
    for (size_t i = 0; i < capacity; i++)
        free(entries[i].blob);
    free(entries);
}

static void shapes_dealloc(Shapes *self) {
    if (self->entries != NULL)
        entries_free(self->entries, self->capacity);
    for (Py_ssize_t i = 0; i < self->nslots; i++)
        free(self->slots[i].variants);
    free(self->slots);
    Py_XDECREF(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int shapes_init(Shapes *self, PyObject *args, PyObject *kwds) {
    PyObject *table;
    Py_ssize_t limit = 1 << 16;
    if (!PyArg_ParseTuple(args, "O!|n", &AnswerTableType, &table, &limit))
        return -1;
    if (limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit must be positive");
        return -1;
    }
    Py_INCREF(table);
    Py_XSETREF(self->table, (AnswerTable *)table);
    self->limit = (size_t)limit;
    self->capacity = 1024;
    self->entries = calloc(self->capacity, sizeof(Entry));
    if (self->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The client address as a key prefix: 4 or 16 bytes after their length. */
static int client_key(const char *host, unsigned char *out) {
    if (strchr(host, ':') != NULL) {
        if (inet_pton(AF_INET6, host, out + 1) != 1)
            return -1;
        out[0] = 16;
        return 17;
    }
    if (inet_pton(AF_INET, host, out + 1) != 1)
        return -1;
    out[0] = 4;
    return 5;
}

/* The shape key of a query from a client (prefix already in `key`): the query less its ID, the name up to
 * its first zero octet lower-cased. Returns the key's length and the question's end (after type and class),
 * or -1: not a shape that can be kept (the Python path decides). */
static Py_ssize_t shape_key(const unsigned char *data, Py_ssize_t size, unsigned char *key, Py_ssize_t prefix,
                            Py_ssize_t *question_end) {
    if (size < 17 || size > QUERY_MAX)
        return -1;
    const unsigned char *zero = memchr(data + 12, 0, (size_t)(size - 12));
    if (zero == NULL)
        return -1;
    Py_ssize_t end = zero - data + 1;
    if (end + 4 > size)
        return -1;
    unsigned char *out = key + prefix;
    memcpy(out, data + 2, 10);
    for (Py_ssize_t i = 12; i < end; i++) {
        unsigned char c = data[i];
        out[i - 2] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    memcpy(out + end - 2, data + end, (size_t)(size - end));
    *question_end = end + 4;
    return prefix + size - 2;
}

static Entry *find(Shapes *self, const unsigned char *key, Py_ssize_t keylen, uint64_t hash) {
    size_t mask = self->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        Entry *entry = &self->entries[i];
        if (entry->blob == NULL)
            return entry;
        if (entry->hash == hash && entry->keylen == (uint32_t)keylen && memcmp(entry->blob, key, keylen) == 0)
            return entry;
    }
}

static int grow(Shapes *self) {
    size_t capacity = self->capacity * 2;
    Entry *entries = calloc(capacity, sizeof(Entry));
    if (entries == NULL)
        return -1;
    Entry *old = self->entries;
    size_t old_capacity = self->capacity;
    self->entries = entries;
    self->capacity = capacity;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].blob == NULL)
            continue;
        Entry *to = find(self, old[i].blob, old[i].keylen, old[i].hash);
        *to = old[i];
    }
    free(old);
    return 0;
}

/* A miss: REPEATED when the same shape missed before (recently), else MISSED, and remembered. */
static Py_ssize_t missed(Shapes *self, uint64_t hash) {
    uint64_t *place = &self->seen[hash & (SEEN - 1)];
    if (*place == (hash | 1))
        return REPEATED;
    *place = hash | 1;
    return MISSED;
}

/* A reply for a known shape into `out` (room for SLOT bytes): its length; MISSED or REPEATED when the shape
 * is unknown (or a fixed reply learnt with another letter case); -1 on error (the random source raised). */
static Py_ssize_t reply_known(Shapes *self, const unsigned char *data, Py_ssize_t size, const unsigned char *client,
                              Py_ssize_t clientlen, PyObject *random, unsigned char *out) {
    unsigned char key[KEY_MAX];
    Py_ssize_t question_end;
    memcpy(key, client, (size_t)clientlen);
    Py_ssize_t keylen = shape_key(data, size, key, clientlen, &question_end);
    if (keylen < 0)
        return MISSED;
    uint64_t hash = hash_bytes(key, (size_t)keylen);
    Entry *entry = find(self, key, keylen, hash);
    if (entry->blob == NULL)
        return missed(self, hash);
    const unsigned char *payload = entry->blob + entry->keylen;
    Py_ssize_t question = question_end - 12;
    if (entry->set < 0) {
        const unsigned char *fixed = payload;
        if (memcmp(fixed + HEAD, data + 12, (size_t)question) != 0)
            return REPEATED; /* its SOA's owner follows the letter case the shape was learnt with */
        out[0] = data[0];
        out[1] = data[1];
        memcpy(out + 2, fixed, entry->fixedlen);
        self->slots[entry->slot].queries++;
        self->hits++;
        return 2 + (Py_ssize_t)entry->fixedlen;
    }
    const Sets held = self->table->sets[entry->set]; /* a copy: retable() may let the table go during the call */
    const Sets *sets = &held;
    int32_t set_slot = entry->slot, sig = entry->sig;
    const unsigned char *heads = payload;
    const unsigned char *opt = payload + (MAX_COUNT + 1) * HEAD;
    uint32_t optlen = entry->optlen, mask = entry->heads_mask;
    /* the draw: the pipeline's random(), as AnswerSets.pick_index does; the call may run other threads,
     * which may change the shapes: nothing of `entry` is read after it but what was copied above */
    unsigned char head_copy[(MAX_COUNT + 1) * HEAD];
    unsigned char opt_copy[KEY_MAX];
    memcpy(head_copy, heads, sizeof(head_copy));
    if (optlen > sizeof(opt_copy))
        return MISSED; /* never: learn() refuses such an OPT */
    memcpy(opt_copy, opt, optlen);
    PyObject *drawn = PyObject_CallNoArgs(random);
    if (drawn == NULL)
        return -1;
    double x = PyFloat_AsDouble(drawn) * sets->total;
    Py_DECREF(drawn);
    if (x == -1.0 && PyErr_Occurred())
        return -1;
    Py_ssize_t lo = 0, hi = sets->variants; /* bisect_right(cumulative, x) */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (x < sets->cumulative[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo >= sets->variants)
        lo = sets->variants - 1; /* random() < 1: never */
    uint32_t first = sets->starts[lo], count = sets->starts[lo + 1] - first;
    if (count > MAX_COUNT || !(mask & (1u << count))) {
        PyErr_SetString(PyExc_RuntimeError, "a shape lacks the head of an answer size");
        return -1;
    }
    Py_ssize_t records = (Py_ssize_t)count * sets->record;
    out[0] = data[0];
    out[1] = data[1];
    memcpy(out + 2, head_copy + count * HEAD, HEAD);
    memcpy(out + 12, data + 12, (size_t)question);
    memcpy(out + question_end, sets->wire + (Py_ssize_t)first * sets->record, (size_t)records);
    Py_ssize_t length = question_end + records;
    if (sig >= 0) { /* the RRSIG of the drawn variant's set: read from the table in service now (retable() keeps
                     * every signed entry at its index), after the draw, which may have run other threads */
        const AnswerTable *table = self->table;
        const Signed *signed_set = sig < table->nsigned ? &table->signed_sets[sig] : NULL;
        if (signed_set == NULL || lo >= table->sets[signed_set->set].variants) {
            PyErr_SetString(PyExc_RuntimeError, "a shape's signed entry is not in the table");
            return -1;
        }
        uint32_t number = signed_set->numbers[lo];
        memcpy(out + length, signed_set->records[number], signed_set->lengths[number]);
        length += signed_set->lengths[number];
    }
    memcpy(out + length, opt_copy, optlen);
    if (set_slot < self->nslots) {
        Slot *slot = &self->slots[set_slot];
        slot->queries++;
        slot->dirty = 1;
        if (slot->variants != NULL && lo < slot->n)
            slot->variants[lo]++;
    }
    self->hits++;
    return length + (Py_ssize_t)optlen;
}

static PyObject *shapes_answer(Shapes *self, PyObject *args) {
    const unsigned char *data;
    Py_ssize_t size;
    const char *host;
    PyObject *random;
    if (!PyArg_ParseTuple(args, "y#sO", &data, &size, &host, &random))
        return NULL;
    unsigned char client[17];
    int clientlen = client_key(host, client);
    if (clientlen < 0)
        Py_RETURN_NONE;
    unsigned char out[QUERY_MAX + 4096];
    /* a reply is the question plus at most MAX_COUNT records of a set, a head and an OPT: bounded by what
     * learn() accepted, which checks it against this buffer */
    Py_ssize_t length = reply_known(self, data, size, client, clientlen, random, out);
    if (length == -1)
        return NULL;
    if (length == MISSED)
        Py_RETURN_NONE;
    if (length == REPEATED)
        Py_RETURN_FALSE;
    return PyBytes_FromStringAndSize((const char *)out, length);
}

static PyObject *shapes_slot(Shapes *self, PyObject *args) {
    Py_ssize_t set;
    if (!PyArg_ParseTuple(args, "n", &set))
        return NULL;
    if (set >= self->table->count || set < -1) {
        PyErr_SetString(PyExc_IndexError, "no such answer set");
        return NULL;
    }
    if (self->nslots == self->slots_cap) {
        Py_ssize_t cap = self->slots_cap ? 2 * self->slots_cap : 64;
        Slot *slots = realloc(self->slots, (size_t)cap * sizeof(Slot));
        if (slots == NULL)
            return PyErr_NoMemory();
        self->slots = slots;
        self->slots_cap = cap;
    }
    Slot *slot = &self->slots[self->nslots];
    memset(slot, 0, sizeof(Slot));
    if (set >= 0) {
        slot->n = self->table->sets[set].variants;
        slot->variants = calloc(slot->n ? (size_t)slot->n : 1, sizeof(uint64_t));
        if (slot->variants == NULL)
            return PyErr_NoMemory();
    }
    return PyLong_FromSsize_t(self->nslots++);
}

static PyObject *shapes_learn(Shapes *self, PyObject *args) {
    const unsigned char *data, *opt, *fixed;
    Py_ssize_t size, optlen, fixedlen, set, slot, sig = -1;
    const char *host;
    PyObject *heads;
    if (!PyArg_ParseTuple(args, "y#snnOy#y#|n", &data, &size, &host, &set, &slot, &heads, &opt, &optlen, &fixed,
                          &fixedlen, &sig))
        return NULL;
    if (set >= self->table->count || set < -1 || slot < 0 || slot >= self->nslots) {
        PyErr_SetString(PyExc_IndexError, "no such answer set or slot");
        return NULL;
    }
    if (sig < -1 || sig >= self->table->nsigned || (sig >= 0 && self->table->signed_sets[sig].set != set)) {
        PyErr_SetString(PyExc_IndexError, "no such signed entry for this answer set");
        return NULL;
    }
    unsigned char key[KEY_MAX];
    Py_ssize_t question_end;
    int clientlen = client_key(host, key);
    if (clientlen < 0)
        Py_RETURN_FALSE;
    Py_ssize_t keylen = shape_key(data, size, key, clientlen, &question_end);
    if (keylen < 0 || optlen > 512 || fixedlen > 4096)
        Py_RETURN_FALSE;
    unsigned char head_area[(MAX_COUNT + 1) * HEAD];
    uint32_t mask = 0;
    memset(head_area, 0, sizeof(head_area));
    if (set >= 0) {
        const Sets *sets = &self->table->sets[set];
        Py_ssize_t signature = sig >= 0 ? self->table->signed_sets[sig].longest : 0;
        if (sets->record * MAX_COUNT + question_end + signature + optlen > QUERY_MAX + 4096)
            Py_RETURN_FALSE;
        /* heads: a sequence by answer size, None where there is none */
        PyObject *seq = PySequence_Fast(heads, "heads: expected a sequence");
        if (seq == NULL)
            return NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        for (Py_ssize_t count = 0; count < n; count++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, count);
            if (item == Py_None)
                continue;
            if (count > MAX_COUNT || !PyBytes_Check(item) || PyBytes_GET_SIZE(item) != HEAD) {
                Py_DECREF(seq);
                Py_RETURN_FALSE;
            }
            memcpy(head_area + count * HEAD, PyBytes_AS_STRING(item), HEAD);
            mask |= 1u << count;
        }
        Py_DECREF(seq);
        for (Py_ssize_t v = 0; v < sets->variants; v++) { /* every size a draw can give has its head */
            uint32_t count = sets->starts[v + 1] - sets->starts[v];
            if (count > MAX_COUNT || !(mask & (1u << count)))
                Py_RETURN_FALSE;
        }
    } else if (fixedlen < HEAD + question_end - 12 || fixedlen + 2 > QUERY_MAX + 4096) {
        Py_RETURN_FALSE;
    }
    if (self->used + 1 > self->limit) { /* full: start again, as the Python path's cache does */
        for (size_t i = 0; i < self->capacity; i++) {
            free(self->entries[i].blob);
            self->entries[i].blob = NULL;
        }
        self->used = 0;
    }
    if ((self->used + 1) * 2 > self->capacity && grow(self) < 0)
        return PyErr_NoMemory();
    size_t payload = set >= 0 ? sizeof(head_area) + (size_t)optlen : (size_t)fixedlen;
    unsigned char *blob = malloc((size_t)keylen + payload);
    if (blob == NULL)
        return PyErr_NoMemory();
    memcpy(blob, key, (size_t)keylen);
    if (set >= 0) {
        memcpy(blob + keylen, head_area, sizeof(head_area));
        memcpy(blob + keylen + sizeof(head_area), opt, (size_t)optlen);
    } else {
        memcpy(blob + keylen, fixed, (size_t)fixedlen);
    }
    uint64_t hash = hash_bytes(key, (size_t)keylen);
    Entry *entry = find(self, key, keylen, hash);
    if (entry->blob != NULL)
        free(entry->blob); /* the same shape learnt again (a fixed reply in another letter case) */
    else
        self->used++;
    entry->hash = hash;
    entry->blob = blob;
    entry->keylen = (uint32_t)keylen;
    entry->set = (int32_t)set;
    entry->sig = set >= 0 ? (int32_t)sig : -1;
    entry->slot = (int32_t)slot;
    entry->heads_mask = mask;
    entry->optlen = set >= 0 ? (uint32_t)optlen : 0;
    entry->fixedlen = set >= 0 ? 0 : (uint32_t)fixedlen;
    Py_RETURN_TRUE;
}

static PyObject *shapes_drain(Shapes *self, PyObject *unused) {
    /* [(slot, queries, [(variant, count), ...]), ...] for the slots counted since the last drain */
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->nslots; i++) {
        Slot *slot = &self->slots[i];
        if (!slot->queries)
            continue;
        PyObject *variants = PyList_New(0);
        if (variants == NULL)
            goto failed;
        for (Py_ssize_t v = 0; slot->variants != NULL && v < slot->n; v++) {
            if (!slot->variants[v])
                continue;
            PyObject *pair = Py_BuildValue("(nK)", v, (unsigned long long)slot->variants[v]);
            if (pair == NULL || PyList_Append(variants, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(variants);
                goto failed;
            }
            Py_DECREF(pair);
            slot->variants[v] = 0;
        }
        PyObject *row = Py_BuildValue("(nKN)", i, (unsigned long long)slot->queries, variants);
        if (row == NULL || PyList_Append(out, row) < 0) {
            Py_XDECREF(row);
            goto failed;
        }
        Py_DECREF(row);
        slot->queries = 0;
        slot->dirty = 0;
    }
    return out;
failed:
    Py_DECREF(out);
    return NULL;
}

static PyObject *shapes_len(Shapes *self, PyObject *unused) { return PyLong_FromSize_t(self->used); }

static PyObject *shapes_hits(Shapes *self, PyObject *unused) { return PyLong_FromUnsignedLongLong(self->hits); }

static PyObject *shapes_retable(Shapes *self, PyObject *args) {
    /* a table with more answer sets, the first ones the same (the compiled table's cache only grows) */
    PyObject *table;
    if (!PyArg_ParseTuple(args, "O!", &AnswerTableType, &table))
        return NULL;
    AnswerTable *grown = (AnswerTable *)table;
    if (grown->count < self->table->count) {
        PyErr_SetString(PyExc_ValueError, "a table with fewer answer sets");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->table->count; i++) {
        if (PyTuple_GET_ITEM(grown->keep, i) != PyTuple_GET_ITEM(self->table->keep, i)) {
            PyErr_SetString(PyExc_ValueError, "a table whose answer sets are not the same");
            return NULL;
        }
    }
    /* shapes refer to signed entries by index: the same entries (the same records) at the same places */
    if (grown->nsigned < self->table->nsigned) {
        PyErr_SetString(PyExc_ValueError, "a table with fewer signed entries");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->table->nsigned; i++) {
        const Signed *mine = &self->table->signed_sets[i], *theirs = &grown->signed_sets[i];
        if (mine->set != theirs->set || mine->nrecords != theirs->nrecords || mine->numbers != theirs->numbers ||
            (mine->nrecords && memcmp(mine->records, theirs->records, mine->nrecords * sizeof(*mine->records)))) {
            PyErr_SetString(PyExc_ValueError, "a table whose signed entries are not the same");
            return NULL;
        }
    }
    Py_INCREF(table);
    Py_SETREF(self->table, grown);
    Py_RETURN_NONE;
}

static PyMethodDef shapes_methods[] = {
    {"retable", (PyCFunction)shapes_retable, METH_VARARGS, "retable(table): the same answer sets and more"},
    {"answer", (PyCFunction)shapes_answer, METH_VARARGS,
     "answer(query, host, random) -> reply; None: a shape not learnt; False: not learnt, and missed before"},
    {"slot", (PyCFunction)shapes_slot, METH_VARARGS, "slot(set index or -1) -> a new counter slot"},
    {"learn", (PyCFunction)shapes_learn, METH_VARARGS,
     "learn(query, host, set, slot, heads, opt, fixed, signed=-1) -> whether the shape is kept; signed: the "
     "table's signed entry whose RRSIG follows the answer (DO on a signed zone)"},
    {"drain", (PyCFunction)shapes_drain, METH_NOARGS, "drain() -> [(slot, queries, [(variant, count)])]"},
    {"size", (PyCFunction)shapes_len, METH_NOARGS, "shapes kept"},
    {"hits", (PyCFunction)shapes_hits, METH_NOARGS, "queries answered natively so far"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ShapesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsbalance._native.Shapes",
    .tp_doc = PyDoc_STR("Shapes(table, limit=65536): replies by query shape, learnt from the Python fast path"),
    .tp_basicsize = sizeof(Shapes),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)shapes_init,
    .tp_dealloc = (destructor)shapes_dealloc,
    .tp_methods = shapes_methods,
};

/* ------------------------------------------------------------------------------------------------ */
/* Batch                                                                                            */

#define NAME_SPACE 32 /* sockaddr_in (16) or sockaddr_in6 (28) */
#define CONTROL_SPACE 64

typedef struct {
    PyObject_HEAD
    int fd, v6, wildcard;
    unsigned int width;
    unsigned char *inbox, *outbox; /* width x SLOT */
    unsigned char *names;          /* width x NAME_SPACE */
    unsigned char *controls;       /* width x CONTROL_SPACE: received, then the replies' */
    struct iovec *rx_iov, *tx_iov;
    struct mmsghdr *rx, *tx;
} Batch;

static void batch_dealloc(Batch *self) {
    free(self->inbox);
    free(self->outbox);
    free(self->names);
    free(self->controls);
    free(self->rx_iov);
    free(self->tx_iov);
    free(self->rx);
    free(self->tx);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int batch_init(Batch *self, PyObject *args, PyObject *kwds) {
    unsigned int width = 32;
    if (!PyArg_ParseTuple(args, "ipp|I", &self->fd, &self->v6, &self->wildcard, &width))
        return -1;
    if (width < 1 || width > 1024) {
        PyErr_SetString(PyExc_ValueError, "width: 1..1024");
        return -1;
    }
    self->width = width;
    self->inbox = malloc((size_t)width * SLOT);
    self->outbox = malloc((size_t)width * SLOT);
    self->names = calloc(width, NAME_SPACE);
    self->controls = calloc(width, CONTROL_SPACE);
    self->rx_iov = calloc(width, sizeof(struct iovec));
    self->tx_iov = calloc(width, sizeof(struct iovec));
    self->rx = calloc(width, sizeof(struct mmsghdr));
    self->tx = calloc(width, sizeof(struct mmsghdr));
    if (!self->inbox || !self->outbox || !self->names || !self->controls || !self->rx_iov || !self->tx_iov ||
        !self->rx || !self->tx) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The pktinfo a reply sends, from its query's, in place (udpio.reply_pktinfo's rule); its length, 0: none. */
static size_t reply_control(Batch *self, unsigned int i, size_t received) {
    unsigned char *control = self->controls + (size_t)i * CONTROL_SPACE;
    struct msghdr probe = {.msg_control = control, .msg_controllen = received};
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&probe); c != NULL; c = CMSG_NXTHDR(&probe, c)) {
        if (self->v6 && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            if (!IN6_IS_ADDR_LINKLOCAL(&info.ipi6_addr))
                info.ipi6_ifindex = 0;
            unsigned char out[CMSG_SPACE(sizeof(struct in6_pktinfo))];
            memset(out, 0, sizeof(out));
            struct cmsghdr *head = (struct cmsghdr *)out;
            head->cmsg_level = IPPROTO_IPV6;
            head->cmsg_type = IPV6_PKTINFO;
            head->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(head), &info, sizeof(info));
            memcpy(control, out, sizeof(out));
            return sizeof(out);
        }
        if (!self->v6 && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            info.ipi_ifindex = 0; /* the routing table still picks the way out; spec_dst is the source */
            unsigned char out[CMSG_SPACE(sizeof(struct in_pktinfo))];
            memset(out, 0, sizeof(out));
            struct cmsghdr *head = (struct cmsghdr *)out;
            head->cmsg_level = IPPROTO_IP;
            head->cmsg_type = IP_PKTINFO;
            head->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(head), &info, sizeof(info));
            memcpy(control, out, sizeof(out));
            return sizeof(out);
        }
    }
    return 0;
}

static PyObject *host_text(Batch *self, unsigned int i) {
    char text[INET6_ADDRSTRLEN];
    const unsigned char *name = self->names + (size_t)i * NAME_SPACE;
    const void *address = self->v6 ? (const void *)&((const struct sockaddr_in6 *)name)->sin6_addr
                                   : (const void *)&((const struct sockaddr_in *)name)->sin_addr;
    if (inet_ntop(self->v6 ? AF_INET6 : AF_INET, address, text, sizeof(text)) == NULL)
        return PyUnicode_FromString("?");
    return PyUnicode_FromString(text);
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

static PyObject *batch_serve(Batch *self, PyObject *args) {
    /* serve(shapes, random, fallback) -> (datagrams received, answered natively, seconds answering);
     * fallback(query, host, repeated) answers the others, `repeated` when the shape missed before:
     * blocks for at least one datagram (the socket's receive timeout ends the wait: (0, 0, 0.0)) */
    Shapes *shapes;
    PyObject *random, *fallback;
    if (!PyArg_ParseTuple(args, "O!OO", &ShapesType, &shapes, &random, &fallback))
        return NULL;
    unsigned int width = self->width;
    for (unsigned int i = 0; i < width; i++) {
        self->rx_iov[i].iov_base = self->inbox + (size_t)i * SLOT;
        self->rx_iov[i].iov_len = SLOT;
        struct msghdr *hdr = &self->rx[i].msg_hdr;
        hdr->msg_name = self->names + (size_t)i * NAME_SPACE;
        hdr->msg_namelen = NAME_SPACE;
        hdr->msg_iov = &self->rx_iov[i];
        hdr->msg_iovlen = 1;
        hdr->msg_control = self->wildcard ? self->controls + (size_t)i * CONTROL_SPACE : NULL;
        hdr->msg_controllen = self->wildcard ? CONTROL_SPACE : 0;
        hdr->msg_flags = 0;
    }
    int count, code = 0;
    Py_BEGIN_ALLOW_THREADS
    do {
        count = recvmmsg(self->fd, self->rx, width, MSG_WAITFORONE, NULL);
        code = errno;
    } while (count < 0 && code == EINTR);
    Py_END_ALLOW_THREADS
    if (count < 0) {
        if (code == EAGAIN || code == EWOULDBLOCK)
            return Py_BuildValue("(iid)", 0, 0, 0.0);
        errno = code;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    double started = seconds_now();
    unsigned char client[17];
    int replies = 0, native = 0;
    for (int i = 0; i < count; i++) {
        const unsigned char *data = self->inbox + (size_t)i * SLOT;
        Py_ssize_t size = self->rx[i].msg_len;
        const unsigned char *name = self->names + (size_t)i * NAME_SPACE;
        int clientlen;
        if (self->v6) {
            client[0] = 16;
            memcpy(client + 1, &((const struct sockaddr_in6 *)name)->sin6_addr, 16);
            clientlen = 17;
        } else {
            client[0] = 4;
            memcpy(client + 1, &((const struct sockaddr_in *)name)->sin_addr, 4);
            clientlen = 5;
        }
        unsigned char *out = self->outbox + (size_t)replies * SLOT;
        Py_ssize_t length = reply_known(shapes, data, size, client, clientlen, random, out);
        if (length == -1)
            return NULL;
        if (length > 0) {
            native++;
        } else { /* the Python path, in order: the same draws in the same sequence */
            PyObject *host = host_text(self, (unsigned int)i);
            if (host == NULL)
                return NULL;
            PyObject *reply = PyObject_CallFunction(fallback, "y#NO", (const char *)data, size, host,
                                                    length == REPEATED ? Py_True : Py_False);
            if (reply == NULL)
                return NULL;
            if (reply != Py_None) {
                char *bytes;
                Py_ssize_t n;
                if (PyBytes_AsStringAndSize(reply, &bytes, &n) < 0) {
                    Py_DECREF(reply);
                    return NULL;
                }
                if (n > SLOT)
                    n = 0;
                memcpy(out, bytes, (size_t)n);
                length = n;
            }
            Py_DECREF(reply);
            if (length <= 0)
                continue; /* nothing to send for this one */
        }
        struct msghdr *hdr = &self->tx[replies].msg_hdr;
        self->tx_iov[replies].iov_base = out;
        self->tx_iov[replies].iov_len = (size_t)length;
        hdr->msg_name = (void *)name;
        hdr->msg_namelen = self->rx[i].msg_hdr.msg_namelen;
        hdr->msg_iov = &self->tx_iov[replies];
        hdr->msg_iovlen = 1;
        hdr->msg_flags = 0;
        size_t control = self->wildcard ? reply_control(self, (unsigned int)i, self->rx[i].msg_hdr.msg_controllen) : 0;
        hdr->msg_control = control ? self->controls + (size_t)i * CONTROL_SPACE : NULL;
        hdr->msg_controllen = control;
        replies++;
    }
    double spent = seconds_now() - started;
    int done = 0;
    Py_BEGIN_ALLOW_THREADS
    while (done < replies) {
        int sent = sendmmsg(self->fd, self->tx + done, (unsigned int)(replies - done), 0);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            sent = 1; /* that datagram is lost; the rest still go */
        }
        done += sent;
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(iid)", count, native, spent);
}

static PyMethodDef batch_methods[] = {
    {"serve", (PyCFunction)batch_serve, METH_VARARGS,
     "serve(shapes, random, fallback) -> (received, answered natively, seconds answering)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dnsbalance._native.Batch",
    .tp_doc = PyDoc_STR("Batch(fd, v6, wildcard, width=32): recvmmsg, answer, sendmmsg"),
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)batch_init,
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_methods = batch_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dnsbalance._native", "The native UDP fast path (see dnsbalance/answer/native.py).", -1,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&AnswerTableType) < 0 || PyType_Ready(&ShapesType) < 0 || PyType_Ready(&BatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "AnswerTable", (PyObject *)&AnswerTableType) < 0 ||
        PyModule_AddObjectRef(m, "Shapes", (PyObject *)&ShapesType) < 0 ||
        PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
