/*
 * loadgen: the load generator of the Ressonance benchmark (driven by bench/run.py).
 *
 * One single-threaded epoll process, no dependency beyond libc (MD5, SHA-256 and HMAC are
 * included below). It talks to any Pusher-compatible server on a loopback address only.
 *
 *   loadgen ws  ...   N WebSocket connections: subscribe (public or presence channel) or stay
 *                     idle; count benchmark events and their publish-to-delivery latency;
 *                     optional presence churn (unsubscribe + subscribe loops).
 *   loadgen pub ...   HTTP API publisher: signed POST /apps/{id}/events on keep-alive
 *                     connections, as fast as accepted (closed loop) or at a fixed rate.
 *   loadgen selftest  prints digests of fixed strings (checked against Python's hashlib).
 *
 * Control: one JSON object per line on stdout ("ready", "p" progress every 200 ms, "result");
 * commands on stdin: "go" (start the churn), "stop" (report and exit); EOF on stdin = stop.
 * Every run is bounded by --timeout seconds.
 *
 * Benchmark events carry data "@<CLOCK_REALTIME ns at send>:<seq>:xxx..."; a subscriber
 * takes CLOCK_REALTIME once per read() and records now - stamp for each event it reads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ---------------------------------------------------------------- small helpers -------- */

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static long nofile_limit(void) {
    struct rlimit rl;
    return getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* ---------------------------------------------------------------- SHA-256 / HMAC ------- */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22);
        uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = S0 + mj;
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->n = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->len += len;
    while (len > 0) {
        size_t take = 64 - c->n < len ? 64 - c->n : len;
        memcpy(c->buf + c->n, p, take);
        c->n += take; p += take; len -= take;
        if (c->n == 64) { sha256_block(c->h, c->buf); c->n = 0; }
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0;
    sha256_update(c, &pad, 1);
    while (c->n != 56) sha256_update(c, &zero, 1);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24); out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8); out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

static void to_hex(const uint8_t *in, size_t n, char *out) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) { out[2 * i] = hx[in[i] >> 4]; out[2 * i + 1] = hx[in[i] & 15]; }
    out[2 * n] = 0;
}

/* hex HMAC-SHA256(key, msg) into out[65] */
static void hmac_sha256_hex(const char *key, const char *msg, size_t msglen, char *out) {
    uint8_t k[64] = {0}, ipad[64], opad[64], inner[32], digest[32];
    size_t klen = strlen(key);
    if (klen > 64) {
        sha256_ctx c; sha256_init(&c); sha256_update(&c, key, klen); sha256_final(&c, k);
    } else {
        memcpy(k, key, klen);
    }
    for (int i = 0; i < 64; i++) { ipad[i] = k[i] ^ 0x36; opad[i] = k[i] ^ 0x5c; }
    sha256_ctx c;
    sha256_init(&c); sha256_update(&c, ipad, 64); sha256_update(&c, msg, msglen); sha256_final(&c, inner);
    sha256_init(&c); sha256_update(&c, opad, 64); sha256_update(&c, inner, 32); sha256_final(&c, digest);
    to_hex(digest, 32, out);
}

/* ---------------------------------------------------------------- MD5 ------------------ */

static uint32_t md5_k[64];
static const uint8_t md5_s[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void md5_setup(void) {
    for (int i = 0; i < 64; i++) md5_k[i] = (uint32_t)floor(fabs(sin((double)(i + 1))) * 4294967296.0);
}

static void md5_block(uint32_t h[4], const uint8_t *p) {
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) { f = (b & c) | (~b & d); g = i; }
        else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
        else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
        else { f = c ^ (b | ~d); g = (7 * i) % 16; }
        f = f + a + md5_k[i] + m[g];
        a = d; d = c; c = b;
        b = b + ((f << md5_s[i]) | (f >> (32 - md5_s[i])));
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
}

static void md5_hex(const void *data, size_t len, char out[33]) {
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const uint8_t *p = data;
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64) md5_block(h, p + i);
    uint8_t tail[128] = {0};
    size_t rest = len - full;
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tlen = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) tail[tlen - 8 + i] = (uint8_t)(bits >> (8 * i));
    md5_block(h, tail);
    if (tlen == 128) md5_block(h, tail + 64);
    uint8_t dig[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) dig[4 * i + j] = (uint8_t)(h[i] >> (8 * j));
    to_hex(dig, 16, out);
}

/* ---------------------------------------------------------------- histogram ------------ */
/* Microsecond values, 64 sub-buckets per power of two above 128 us: < 1.6 % error. */

#define HBUCKETS 2560
typedef struct { uint64_t c[HBUCKETS]; uint64_t n; } hist;

static int hist_index(uint64_t v) {
    if (v < 128) return (int)v;
    int e = 63 - __builtin_clzll(v);          /* >= 7 */
    int shift = e - 6;
    int idx = 128 + (e - 7) * 64 + (int)((v >> shift) - 64);
    return idx < HBUCKETS ? idx : HBUCKETS - 1;
}

static uint64_t hist_lower(int idx) {
    if (idx < 128) return (uint64_t)idx;
    int e = (idx - 128) / 64 + 7;
    uint64_t sub = (uint64_t)((idx - 128) % 64 + 64);
    return sub << (e - 6);
}

static void hist_add(hist *h, int64_t us) {
    if (us < 0) us = 0;
    h->c[hist_index((uint64_t)us)]++;
    h->n++;
}

static void hist_print(FILE *f, const char *name, const hist *h) {
    fprintf(f, "\"%s\":[", name);
    int first = 1;
    for (int i = 0; i < HBUCKETS; i++) {
        if (!h->c[i]) continue;
        fprintf(f, "%s[%llu,%llu]", first ? "" : ",", (unsigned long long)hist_lower(i),
                (unsigned long long)h->c[i]);
        first = 0;
    }
    fprintf(f, "]");
}

static void print_rusage(FILE *f) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f, "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"maxrss_kb\":%ld",
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { fputc('\\', f); fputc(ch, f); }
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* ---------------------------------------------------------------- options -------------- */

typedef struct {
    const char *host;
    int port;
    const char *app_id, *key, *secret;
    int conns;
    int index_base;          /* global index of this process's first connection */
    const char *channel;     /* one channel for every connection */
    const char *prefix;      /* or prefix + index (ws) / prefix + random(count) (pub) */
    int channel_count;
    int subscribe;
    const char *presence;    /* presence channel name */
    int churners;            /* the last `churners` connections churn after "go" */
    double churn_duration;
    int src_first, src_count;
    int inflight;
    double timeout;
    /* pub */
    long events;
    double rate;
    double duration;
    int data_size;
    int busy_poll;
} options;

static options opt = {
    .host = "127.0.0.1", .port = 6001, .app_id = "1", .key = "key", .secret = "secret",
    .conns = 1, .subscribe = 1, .src_first = 2, .src_count = 8, .inflight = 256,
    .timeout = 60, .events = 1, .duration = 0, .data_size = 100,
};

static void parse_options(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--host")) opt.host = v;
        else if (ARG("--port")) opt.port = atoi(v);
        else if (ARG("--app-id")) opt.app_id = v;
        else if (ARG("--key")) opt.key = v;
        else if (ARG("--secret")) opt.secret = v;
        else if (ARG("--conns")) opt.conns = atoi(v);
        else if (ARG("--index-base")) opt.index_base = atoi(v);
        else if (ARG("--channel")) opt.channel = v;
        else if (ARG("--channel-prefix")) opt.prefix = v;
        else if (ARG("--channel-count")) opt.channel_count = atoi(v);
        else if (ARG("--presence")) opt.presence = v;
        else if (ARG("--churners")) opt.churners = atoi(v);
        else if (ARG("--churn-duration")) opt.churn_duration = atof(v);
        else if (ARG("--src-first")) opt.src_first = atoi(v);
        else if (ARG("--src-count")) opt.src_count = atoi(v);
        else if (ARG("--inflight")) opt.inflight = atoi(v);
        else if (ARG("--timeout")) opt.timeout = atof(v);
        else if (ARG("--events")) opt.events = atol(v);
        else if (ARG("--rate")) opt.rate = atof(v);
        else if (ARG("--duration")) opt.duration = atof(v);
        else if (ARG("--data-size")) opt.data_size = atoi(v);
        else if (strcmp(a, "--no-subscribe") == 0) opt.subscribe = 0;
        else if (strcmp(a, "--busy-poll") == 0) opt.busy_poll = 1;
        else die("unknown or incomplete option %s", a);
#undef ARG
    }
}

static struct sockaddr_in server_addr(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) die("--host must be an IPv4 address");
    if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) die("refusing a non-loopback target %s", opt.host);
    return sa;
}

/* ---------------------------------------------------------------- shared I/O state ----- */

#define RBUF_SIZE (1 << 20)
static char *rbuf;              /* shared read buffer: carry-over + one read() */
static int epfd;
static volatile int stop_requested;
static int go_received;
#define STDIN_TAG 0xffffffffu

static int read_stdin_commands(void) {
    /* returns 1 on "stop" or EOF */
    char buf[256];
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n == 0) return 1;
    if (n < 0) return errno == EAGAIN ? 0 : 1;
    buf[n] = 0;
    if (strstr(buf, "go")) go_received = 1;
    return strstr(buf, "stop") != NULL;
}

static void watch_stdin(void) {
    set_nonblock(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) != 0) { /* stdin is a file or a tty */ }
}

/* ---------------------------------------------------------------- WebSocket mode ------- */

enum { WS_IDLE, WS_CONNECTING, WS_HANDSHAKE, WS_OPEN, WS_DEAD };

typedef struct {
    int fd;
    uint8_t state, established, subscribed, churner, counted_ready;
    uint32_t carry_len, carry_cap;
    char *carry;
    char *wbuf;
    uint32_t wlen;
    uint64_t t_sub_sent;
    char socket_id[40];
} wconn;

static wconn *wc;
static int n_started, n_inflight, n_established, n_subscribed, n_failed, n_closed;
static int n_ready_target;
static uint64_t rx_events, rx_bytes, member_events, joins, leaves, errors_rx;
static uint64_t first_rx_ns, last_rx_ns, t_connect0_real, t_ready_real, t_last_est_real;
static uint64_t churn_t0, churn_t1;
static int churning;
static hist lat, join_lat;
static int close_codes[5000];
static char first_error[200];
static struct sockaddr_in target;

static void note_error(const char *msg) {
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", msg);
}

static void ws_kill(int i, int code) {
    wconn *c = &wc[i];
    if (c->state == WS_DEAD) return;
    int was_ready = c->counted_ready;
    if (c->state == WS_CONNECTING || c->state == WS_HANDSHAKE || !c->established) {
        if (c->state != WS_IDLE) n_inflight--;
        n_failed++;
    } else {
        n_closed++;
    }
    if (code >= 0 && code < 5000) close_codes[code]++;
    (void)was_ready;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = WS_DEAD;
    free(c->carry); c->carry = NULL; c->carry_len = c->carry_cap = 0;
    free(c->wbuf); c->wbuf = NULL; c->wlen = 0;
}

static void ws_send_raw(int i, const char *data, size_t len) {
    wconn *c = &wc[i];
    if (c->state == WS_DEAD) return;
    if (c->wlen == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n == (ssize_t)len) return;
        if (n < 0) {
            if (errno != EAGAIN) { ws_kill(i, 1); return; }
            n = 0;
        }
        data += n; len -= (size_t)n;
    }
    c->wbuf = realloc(c->wbuf, c->wlen + len);
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += (uint32_t)len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* a masked client frame with a zero masking key (RFC 6455 allows any key) */
static void ws_send_frame(int i, int opcode, const char *payload, size_t len) {
    char frame[16384];
    size_t h = 0;
    if (len + 14 > sizeof frame) return;
    frame[h++] = (char)(0x80 | opcode);
    if (len < 126) frame[h++] = (char)(0x80 | len);
    else { frame[h++] = (char)(0x80 | 126); frame[h++] = (char)(len >> 8); frame[h++] = (char)(len & 255); }
    memset(frame + h, 0, 4);
    h += 4;
    memcpy(frame + h, payload, len);
    ws_send_raw(i, frame, h + len);
}

static void channel_of(int i, char *out, size_t cap) {
    if (opt.presence) snprintf(out, cap, "%s", opt.presence);
    else if (opt.channel) snprintf(out, cap, "%s", opt.channel);
    else snprintf(out, cap, "%s%d", opt.prefix ? opt.prefix : "c-", opt.index_base + i);
}

static void ws_subscribe(int i) {
    char ch[256], msg[2048];
    channel_of(i, ch, sizeof ch);
    int n;
    if (opt.presence) {
        int uid = opt.index_base + i;
        char cdata[256], subject[512], sig[65];
        snprintf(cdata, sizeof cdata, "{\"user_id\":\"u%d\",\"user_info\":{\"name\":\"user %d\"}}", uid, uid);
        int sl = snprintf(subject, sizeof subject, "%s:%s:%s", wc[i].socket_id, ch, cdata);
        hmac_sha256_hex(opt.secret, subject, (size_t)sl, sig);
        n = snprintf(msg, sizeof msg,
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"%s:%s\",\"channel_data\":"
                     "\"{\\\"user_id\\\":\\\"u%d\\\",\\\"user_info\\\":{\\\"name\\\":\\\"user %d\\\"}}\","
                     "\"channel\":\"%s\"}}",
                     opt.key, sig, uid, uid, ch);
    } else {
        n = snprintf(msg, sizeof msg,
                     "{\"event\":\"pusher:subscribe\",\"data\":{\"auth\":\"\",\"channel\":\"%s\"}}", ch);
    }
    wc[i].t_sub_sent = real_ns();
    ws_send_frame(i, 1, msg, (size_t)n);
}

static void ws_unsubscribe(int i) {
    char ch[256], msg[512];
    channel_of(i, ch, sizeof ch);
    int n = snprintf(msg, sizeof msg, "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"%s\"}}", ch);
    ws_send_frame(i, 1, msg, (size_t)n);
    leaves++;
}

static void ws_start(int i) {
    wconn *c = &wc[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { note_error(strerror(errno)); c->state = WS_DEAD; n_failed++; return; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_count > 0) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        uint32_t last = (uint32_t)(opt.src_first + (opt.index_base + i) % opt.src_count);
        src.sin_addr.s_addr = htonl((127u << 24) | last);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
            note_error(strerror(errno)); close(fd); c->state = WS_DEAD; n_failed++; return;
        }
    }
    c->fd = fd;
    c->state = WS_CONNECTING;
    n_inflight++;
    n_started++;
    int r = connect(fd, (struct sockaddr *)&target, sizeof target);
    if (r != 0 && errno != EINPROGRESS) { note_error(strerror(errno)); ws_kill(i, -1); return; }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void ws_maybe_ready(int i) {
    wconn *c = &wc[i];
    if (c->counted_ready) return;
    if (opt.subscribe ? c->subscribed : c->established) {
        c->counted_ready = 1;
        n_ready_target++;
    }
}

static void ws_on_text(int i, const char *p, size_t len, uint64_t now) {
    wconn *c = &wc[i];
    const char *d = memmem(p, len, "\"data\":\"@", 9);
    if (d) {
        const char *q = d + 9, *end = p + len;
        uint64_t ts = 0;
        while (q < end && *q >= '0' && *q <= '9') ts = ts * 10 + (uint64_t)(*q++ - '0');
        hist_add(&lat, (int64_t)(now / 1000) - (int64_t)(ts / 1000));
        rx_events++;
        if (!first_rx_ns) first_rx_ns = now;
        last_rx_ns = now;
        return;
    }
    if (memmem(p, len, "member_added", 12) || memmem(p, len, "member_removed", 14)) {
        member_events++;
        return;
    }
    if (memmem(p, len, "subscription_succeeded", 22)) {
        if (!c->subscribed) { c->subscribed = 1; n_subscribed++; ws_maybe_ready(i); }
        if (c->churner && churning) {
            hist_add(&join_lat, (int64_t)((now - c->t_sub_sent) / 1000));
            joins++;
            ws_unsubscribe(i);
            ws_subscribe(i);
        }
        return;
    }
    if (memmem(p, len, "connection_established", 22)) {
        const char *s = memmem(p, len, "socket_id", 9);
        if (s) {
            const char *end = p + len;
            s += 9;
            while (s < end && !(*s >= '0' && *s <= '9')) s++;
            size_t k = 0;
            while (s < end && k < sizeof c->socket_id - 1 && ((*s >= '0' && *s <= '9') || *s == '.'))
                c->socket_id[k++] = *s++;
            c->socket_id[k] = 0;
        }
        if (!c->established) {
            c->established = 1;
            n_established++;
            n_inflight--;
            t_last_est_real = now;
        }
        if (opt.subscribe) ws_subscribe(i);
        ws_maybe_ready(i);
        return;
    }
    if (memmem(p, len, "pusher:ping", 11)) {
        static const char pong[] = "{\"event\":\"pusher:pong\",\"data\":{}}";
        ws_send_frame(i, 1, pong, sizeof pong - 1);
        return;
    }
    if (memmem(p, len, "error", 5)) {
        errors_rx++;
        char tmp[160];
        size_t k = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
        memcpy(tmp, p, k);
        tmp[k] = 0;
        note_error(tmp);
    }
}

/* parse frames in buf[0..len); returns bytes consumed; -1 if the connection died */
static long ws_parse_frames(int i, const char *buf, size_t len, uint64_t now) {
    size_t off = 0;
    while (len - off >= 2) {
        const uint8_t *p = (const uint8_t *)buf + off;
        int op = p[0] & 15;
        uint64_t plen = p[1] & 127;
        size_t h = 2;
        if (plen == 126) {
            if (len - off < 4) break;
            plen = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (plen == 127) {
            if (len - off < 10) break;
            plen = 0;
            for (int k = 0; k < 8; k++) plen = plen << 8 | p[2 + k];
            h = 10;
        }
        if (p[1] & 128) h += 4; /* servers do not mask; tolerate it anyway */
        if (len - off < h + plen) break;
        const char *payload = (const char *)p + h;
        if (op == 1 || op == 0) {
            ws_on_text(i, payload, (size_t)plen, now);
        } else if (op == 8) {
            int code = plen >= 2 ? ((uint8_t)payload[0] << 8 | (uint8_t)payload[1]) : 1005;
            ws_kill(i, code);
            return -1;
        } else if (op == 9) {
            ws_send_frame(i, 10, payload, (size_t)plen);
        }
        if (wc[i].state == WS_DEAD) return -1;
        off += h + (size_t)plen;
    }
    return (long)off;
}

static void ws_on_readable(int i, uint64_t now) {
    wconn *c = &wc[i];
    size_t have = c->carry_len;
    if (have) memcpy(rbuf, c->carry, have);
    ssize_t n = read(c->fd, rbuf + have, RBUF_SIZE - have - 1);
    if (n == 0) { ws_kill(i, 1006); return; }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) ws_kill(i, 1006);
        return;
    }
    rx_bytes += (uint64_t)n;
    size_t len = have + (size_t)n;
    size_t off = 0;
    if (c->state == WS_HANDSHAKE) {
        rbuf[len] = 0;
        char *end = memmem(rbuf, len, "\r\n\r\n", 4);
        if (!end) {
            if (len > 8192) { note_error("handshake response too long"); ws_kill(i, -1); return; }
            goto keep;
        }
        if (strncmp(rbuf, "HTTP/1.1 101", 12) != 0) {
            char tmp[120];
            snprintf(tmp, sizeof tmp, "handshake refused: %.80s", rbuf);
            note_error(tmp);
            ws_kill(i, -1);
            return;
        }
        c->state = WS_OPEN;
        off = (size_t)(end - rbuf) + 4;
    }
    {
        long used = ws_parse_frames(i, rbuf + off, len - off, now);
        if (used < 0) return;
        off += (size_t)used;
    }
keep:
    c->carry_len = (uint32_t)(len - off);
    if (c->carry_len) {
        if (c->carry_cap < c->carry_len) {
            c->carry_cap = c->carry_len < 256 ? 256 : c->carry_len;
            c->carry = realloc(c->carry, c->carry_cap);
        }
        memmove(c->carry, rbuf + off, c->carry_len);
    }
}

static void ws_on_writable(int i) {
    wconn *c = &wc[i];
    if (c->state == WS_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { note_error(strerror(err)); ws_kill(i, -1); return; }
        char req[1024];
        int n = snprintf(req, sizeof req,
                         "GET /app/%s?protocol=7&client=js&version=8.6.0&flash=false HTTP/1.1\r\n"
                         "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         opt.key, opt.host, opt.port);
        c->state = WS_HANDSHAKE;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        ws_send_raw(i, req, (size_t)n);
        return;
    }
    if (c->wlen) {
        ssize_t n = write(c->fd, c->wbuf, c->wlen);
        if (n < 0) { if (errno != EAGAIN) ws_kill(i, 1006); return; }
        memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
        c->wlen -= (uint32_t)n;
    }
    if (!c->wlen) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void ws_report_result(void) {
    FILE *f = stdout;
    fprintf(f, "{\"ev\":\"result\",\"conns\":%d,\"established\":%d,\"subscribed\":%d,\"failed\":%d,"
               "\"closed\":%d,\"rx\":%llu,\"rx_bytes\":%llu,\"first_rx_ns\":%llu,\"last_rx_ns\":%llu,"
               "\"connect_start_ns\":%llu,\"last_established_ns\":%llu,\"ready_ns\":%llu,"
               "\"member_events\":%llu,\"joins\":%llu,\"leaves\":%llu,\"churn_t0_ns\":%llu,"
               "\"churn_t1_ns\":%llu,\"errors_rx\":%llu,",
            opt.conns, n_established, n_subscribed, n_failed, n_closed,
            (unsigned long long)rx_events, (unsigned long long)rx_bytes,
            (unsigned long long)first_rx_ns, (unsigned long long)last_rx_ns,
            (unsigned long long)t_connect0_real, (unsigned long long)t_last_est_real,
            (unsigned long long)t_ready_real, (unsigned long long)member_events,
            (unsigned long long)joins, (unsigned long long)leaves, (unsigned long long)churn_t0,
            (unsigned long long)churn_t1, (unsigned long long)errors_rx);
    fprintf(f, "\"close_codes\":{");
    int first = 1;
    for (int k = 0; k < 5000; k++)
        if (close_codes[k]) { fprintf(f, "%s\"%d\":%d", first ? "" : ",", k, close_codes[k]); first = 0; }
    fprintf(f, "},\"first_error\":");
    json_str(f, first_error);
    fprintf(f, ",");
    hist_print(f, "lat_us", &lat);
    fprintf(f, ",");
    hist_print(f, "join_lat_us", &join_lat);
    fprintf(f, ",");
    print_rusage(f);
    fprintf(f, "}\n");
    fflush(f);
}

static int run_ws(void) {
    long limit = nofile_limit();
    if (opt.conns + 16 > limit)
        die("%d connections need more file descriptors than RLIMIT_NOFILE %ld", opt.conns, limit);
    target = server_addr();
    wc = calloc((size_t)opt.conns, sizeof *wc);
    for (int i = 0; i < opt.conns; i++) wc[i].fd = -1;
    if (opt.presence && opt.churners > opt.conns) opt.churners = opt.conns;
    for (int i = opt.conns - (opt.presence ? opt.churners : 0); i < opt.conns; i++) wc[i].churner = 1;
    epfd = epoll_create1(0);
    watch_stdin();
    struct epoll_event evs[512];
    uint64_t t0 = mono_ns(), deadline = t0 + (uint64_t)(opt.timeout * 1e9);
    uint64_t next_progress = t0 + 200000000ull;
    t_connect0_real = real_ns();
    int next = 0, reported_ready = 0;
    while (!stop_requested) {
        while (next < opt.conns && n_inflight < opt.inflight) ws_start(next++);
        if (!reported_ready && next >= opt.conns && n_ready_target + n_failed + n_closed >= opt.conns) {
            t_ready_real = real_ns();
            printf("{\"ev\":\"ready\",\"ok\":%d,\"failed\":%d,\"established\":%d,\"subscribed\":%d,"
                   "\"connect_s\":%.3f}\n",
                   n_ready_target, n_failed + n_closed, n_established, n_subscribed,
                   (t_last_est_real - t_connect0_real) / 1e9);
            fflush(stdout);
            reported_ready = 1;
        }
        if (go_received && !churning && !churn_t0 && opt.presence && reported_ready) {
            churning = 1;
            churn_t0 = real_ns();
            for (int i = 0; i < opt.conns; i++)
                if (wc[i].churner && wc[i].state == WS_OPEN) { ws_unsubscribe(i); ws_subscribe(i); }
        }
        if (churning && opt.churn_duration > 0 && real_ns() - churn_t0 >= (uint64_t)(opt.churn_duration * 1e9)) {
            churning = 0;
            churn_t1 = real_ns();
            printf("{\"ev\":\"churn_done\"}\n");
            fflush(stdout);
        }
        int n = epoll_wait(epfd, evs, 512, opt.busy_poll ? 0 : 50);
        uint64_t now = real_ns();
        for (int k = 0; k < n; k++) {
            uint32_t tag = evs[k].data.u32;
            if (tag == STDIN_TAG) {
                if (read_stdin_commands()) stop_requested = 1;
                continue;
            }
            wconn *c = &wc[tag];
            if (c->state == WS_DEAD) continue;
            if (evs[k].events & (EPOLLOUT)) ws_on_writable((int)tag);
            if (c->state == WS_DEAD) continue;
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (c->state == WS_CONNECTING) ws_on_writable((int)tag);
                else ws_on_readable((int)tag, now);
            }
        }
        uint64_t m = mono_ns();
        if (m >= next_progress) {
            printf("{\"ev\":\"p\",\"rx\":%llu,\"est\":%d,\"sub\":%d,\"failed\":%d,\"closed\":%d,\"joins\":%llu}\n",
                   (unsigned long long)rx_events, n_established, n_subscribed, n_failed, n_closed,
                   (unsigned long long)joins);
            fflush(stdout);
            next_progress = m + 200000000ull;
        }
        if (m >= deadline) { note_error("timeout"); break; }
    }
    if (churning) { churning = 0; churn_t1 = real_ns(); }
    ws_report_result();
    return 0;
}

/* ---------------------------------------------------------------- HTTP publisher ------- */

typedef struct {
    int fd;
    int busy;
    uint64_t t_sent;
    size_t rlen;
    char rbuf[16384];
} hconn;

static hconn *hc;
static long p_sent, p_done, p_ok, p_fail_conn;
static int status_counts[600];
static hist req_lat;
static uint64_t p_first_send, p_last_done;
static struct sockaddr_in p_target;
static char pad_buf[65536];

static int h_open(int i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&p_target, sizeof p_target) != 0) {
        note_error(strerror(errno));
        close(fd);
        return -1;
    }
    set_nonblock(fd);
    hc[i].fd = fd;
    hc[i].busy = 0;
    hc[i].rlen = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void h_close(int i) {
    if (hc[i].fd >= 0) close(hc[i].fd);
    hc[i].fd = -1;
    hc[i].busy = 0;
}

static int h_send(int i) {
    char body[70000], req[72000], channel[256], md5[33], sig[65], sign[1024], query[512];
    if (hc[i].fd < 0 && h_open(i) != 0) { p_fail_conn++; return -1; }
    if (opt.channel) snprintf(channel, sizeof channel, "%s", opt.channel);
    else snprintf(channel, sizeof channel, "%s%d", opt.prefix ? opt.prefix : "c-",
                  (int)(rng() % (uint64_t)(opt.channel_count > 0 ? opt.channel_count : 1)));
    uint64_t stamp = real_ns();
    int head = snprintf(body, sizeof body, "{\"name\":\"b\",\"channels\":[\"%s\"],\"data\":\"@%llu:%ld:",
                        channel, (unsigned long long)stamp, p_sent);
    int pad = opt.data_size - (head - (int)(strstr(body, "\"data\":\"") - body) - 8);
    if (pad < 1) pad = 1;
    if (pad > 60000) pad = 60000;
    memcpy(body + head, pad_buf, (size_t)pad);
    int blen = head + pad;
    blen += snprintf(body + blen, sizeof body - (size_t)blen, "\"}");
    md5_hex(body, (size_t)blen, md5);
    int ql = snprintf(query, sizeof query, "auth_key=%s&auth_timestamp=%llu&auth_version=1.0&body_md5=%s",
                      opt.key, (unsigned long long)(stamp / 1000000000ull), md5);
    int sl = snprintf(sign, sizeof sign, "POST\n/apps/%s/events\n%s", opt.app_id, query);
    (void)ql;
    hmac_sha256_hex(opt.secret, sign, (size_t)sl, sig);
    int rl = snprintf(req, sizeof req,
                      "POST /apps/%s/events?%s&auth_signature=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                      opt.app_id, query, sig, opt.host, opt.port, blen);
    memcpy(req + rl, body, (size_t)blen);
    rl += blen;
    size_t off = 0;
    while (off < (size_t)rl) {
        ssize_t n = write(hc[i].fd, req + off, (size_t)rl - off);
        if (n < 0) {
            if (errno == EAGAIN) { struct timespec ts = {0, 50000}; nanosleep(&ts, NULL); continue; }
            note_error(strerror(errno));
            h_close(i);
            p_fail_conn++;
            return -1;
        }
        off += (size_t)n;
    }
    hc[i].busy = 1;
    hc[i].t_sent = stamp;
    if (!p_first_send) p_first_send = stamp;
    p_sent++;
    return 0;
}

/* returns 1 when a complete response was consumed */
static int h_on_readable(int i, uint64_t now) {
    hconn *c = &hc[i];
    ssize_t n = read(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - 1 - c->rlen);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return 0;
        int was_busy = c->busy;
        h_close(i);
        if (was_busy) { p_fail_conn++; p_done++; }
        return was_busy;
    }
    c->rlen += (size_t)n;
    c->rbuf[c->rlen] = 0;
    char *end = strstr(c->rbuf, "\r\n\r\n");
    if (!end) return 0;
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    int status = atoi(c->rbuf + 9);
    long clen = 0;
    char saved = *end;
    *end = 0;
    char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
    int chunked = strcasestr(c->rbuf, "\r\ntransfer-encoding: chunked") != NULL;
    int close_after = strcasestr(c->rbuf, "\r\nconnection: close") != NULL;
    if (cl) clen = atol(cl + 17);
    *end = saved;
    size_t total;
    if (chunked) {
        char *z = strstr(c->rbuf + hlen, "0\r\n\r\n");
        if (!z) return 0;
        total = (size_t)(z - c->rbuf) + 5;
    } else {
        total = hlen + (size_t)clen;
        if (c->rlen < total) return 0;
    }
    memmove(c->rbuf, c->rbuf + total, c->rlen - total);
    c->rlen -= total;
    if (status > 0 && status < 600) status_counts[status]++;
    if (status == 200) p_ok++;
    else if (status != 200 && !first_error[0]) {
        char tmp[200];
        snprintf(tmp, sizeof tmp, "HTTP %d", status);
        note_error(tmp);
    }
    hist_add(&req_lat, (int64_t)((now - c->t_sent) / 1000));
    c->busy = 0;
    p_done++;
    p_last_done = now;
    if (close_after) h_close(i);
    return 1;
}

static int run_pub(void) {
    p_target = server_addr();
    memset(pad_buf, 'x', sizeof pad_buf);
    if (opt.conns < 1) opt.conns = 1;
    hc = calloc((size_t)opt.conns, sizeof *hc);
    epfd = epoll_create1(0);
    watch_stdin();
    for (int i = 0; i < opt.conns; i++) {
        hc[i].fd = -1;
        if (h_open(i) != 0) die("cannot connect to %s:%d: %s", opt.host, opt.port, first_error);
    }
    uint64_t t0 = mono_ns();
    uint64_t hard = t0 + (uint64_t)(opt.timeout * 1e9);
    uint64_t send_until = opt.duration > 0 ? t0 + (uint64_t)(opt.duration * 1e9) : hard;
    uint64_t next_progress = t0 + 200000000ull;
    double interval = opt.rate > 0 ? 1e9 / opt.rate : 0;
    uint64_t next_due = t0;
    int sending = 1;
    struct epoll_event evs[256];
    printf("{\"ev\":\"ready\"}\n");
    fflush(stdout);
    while (!stop_requested) {
        uint64_t m = mono_ns();
        if (sending && (m >= send_until || p_sent >= opt.events)) sending = 0;
        if (sending) {
            for (int i = 0; i < opt.conns && sending; i++) {
                if (hc[i].busy) continue;
                if (interval > 0) {
                    if (m < next_due) break;
                    next_due += (uint64_t)interval;
                }
                h_send(i);
                if (p_sent >= opt.events) sending = 0;
            }
        }
        int inflight = 0;
        for (int i = 0; i < opt.conns; i++) inflight += hc[i].busy;
        if (!sending && inflight == 0) break;
        int wait_ms = 50;
        if (interval > 0 && sending) {
            int64_t d = ((int64_t)next_due - (int64_t)mono_ns()) / 1000000;
            wait_ms = d < 0 ? 0 : (d > 50 ? 50 : (int)d);
        }
        int n = epoll_wait(epfd, evs, 256, wait_ms);
        uint64_t now = real_ns();
        for (int k = 0; k < n; k++) {
            uint32_t tag = evs[k].data.u32;
            if (tag == STDIN_TAG) {
                if (read_stdin_commands()) stop_requested = 1;
                continue;
            }
            if (hc[tag].fd < 0) continue;
            if (h_on_readable((int)tag, now) && sending && interval == 0 && p_sent < opt.events &&
                mono_ns() < send_until)
                h_send((int)tag);
        }
        m = mono_ns();
        if (m >= next_progress) {
            printf("{\"ev\":\"p\",\"sent\":%ld,\"done\":%ld,\"ok\":%ld}\n", p_sent, p_done, p_ok);
            fflush(stdout);
            next_progress = m + 200000000ull;
        }
        if (m >= hard) { note_error("timeout"); break; }
    }
    printf("{\"ev\":\"result\",\"sent\":%ld,\"done\":%ld,\"ok\":%ld,\"conn_failures\":%ld,"
           "\"first_send_ns\":%llu,\"last_done_ns\":%llu,\"status\":{",
           p_sent, p_done, p_ok, p_fail_conn, (unsigned long long)p_first_send,
           (unsigned long long)p_last_done);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (status_counts[s]) { printf("%s\"%d\":%d", first ? "" : ",", s, status_counts[s]); first = 0; }
    printf("},\"first_error\":");
    json_str(stdout, first_error);
    printf(",");
    hist_print(stdout, "req_lat_us", &req_lat);
    printf(",");
    print_rusage(stdout);
    printf("}\n");
    fflush(stdout);
    /* stay alive (idle) until told to stop, so the driver can read our CPU time in /proc */
    for (int i = 0; i < opt.conns; i++) h_close(i);
    while (!stop_requested && mono_ns() < hard) {
        int n = epoll_wait(epfd, evs, 256, 100);
        for (int k = 0; k < n; k++)
            if (evs[k].data.u32 == STDIN_TAG && read_stdin_commands()) stop_requested = 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- main ----------------- */

static void on_signal(int sig) { (void)sig; stop_requested = 1; }

int main(int argc, char **argv) {
    if (argc < 2) die("usage: loadgen ws|pub|selftest [options]");
    md5_setup();
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    rbuf = malloc(RBUF_SIZE);
    rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ real_ns();
    parse_options(argc, argv);
    if (strcmp(argv[1], "ws") == 0) return run_ws();
    if (strcmp(argv[1], "pub") == 0) return run_pub();
    if (strcmp(argv[1], "selftest") == 0) {
        /* digests of fixed inputs; bench/run.py compares them with hashlib */
        static const char *inputs[] = {"", "abc", "The quick brown fox jumps over the lazy dog",
                                       "0123456789012345678901234567890123456789012345678901234"
                                       "567890123456789"};
        for (size_t k = 0; k < sizeof inputs / sizeof *inputs; k++) {
            char m[33], s[65];
            md5_hex(inputs[k], strlen(inputs[k]), m);
            hmac_sha256_hex("7ad3773142a6692b25b8", inputs[k], strlen(inputs[k]), s);
            printf("%s %s\n", m, s);
        }
        return 0;
    }
    die("unknown mode %s", argv[1]);
    return 2;
}
