/* Closed-loop load generator for benchmarks/sessions_vs_memcached.py: one thread, epoll,
 * N connections, each sending P requests at once and waiting for all P replies.
 * Speaks the memcached text protocol (mc) and RESP (redis); with redis+wait every SET is
 * followed by WAIT 1 0 and counts as done when both replies are in.
 * Output: one JSON line {ops, seconds, ops_per_s, p50_us, p99_us, errors}.
 * Latency of a request = time from sending its batch to the batch's last reply.
 *
 * usage: loadgen HOST PORT mc|redis|redis-wait set|get CONNS PIPELINE SECONDS VALUE_SIZE KEYS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_US 200000
#define BUF 1048576

typedef struct {
    int fd;
    char *out;
    size_t out_len, out_off;
    char *in;
    size_t in_len;
    int pending;       /* replies still expected for the batch in flight */
    double sent_at;
    long skip;         /* payload bytes (bulk/value + CRLF) still to skip */
} conn_t;

static long hist[MAX_US + 1];
static long ops, errors;
static int proto; /* 0 mc, 1 redis, 2 redis-wait */
static int is_set, pipeline, value_size, keyspace;
static char *value;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void build_batch(conn_t *c) {
    size_t off = 0;
    for (int i = 0; i < pipeline; i++) {
        int key = rand() % keyspace;
        if (proto == 0) {
            if (is_set)
                off += sprintf(c->out + off, "set key:%d 0 0 %d\r\n%s\r\n", key, value_size, value);
            else
                off += sprintf(c->out + off, "get key:%d\r\n", key);
        } else {
            char k[32];
            int kl = sprintf(k, "key:%d", key);
            if (is_set) {
                off += sprintf(c->out + off, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", kl, k,
                               value_size, value);
                if (proto == 2) off += sprintf(c->out + off, "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n");
            } else {
                off += sprintf(c->out + off, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, k);
            }
        }
    }
    c->out_len = off;
    c->out_off = 0;
    c->pending = pipeline * ((proto == 2 && is_set) ? 2 : 1);
    c->sent_at = now();
}

/* Consume complete replies from c->in; returns replies counted. */
static int parse(conn_t *c) {
    size_t pos = 0;
    int replies = 0;
    for (;;) {
        if (c->skip) {
            size_t avail = c->in_len - pos;
            size_t take = avail < (size_t)c->skip ? avail : (size_t)c->skip;
            pos += take;
            c->skip -= take;
            if (c->skip) break;
            if (proto != 0) replies++; /* a redis bulk reply ends with its payload */
            continue;
        }
        char *nl = memmem(c->in + pos, c->in_len - pos, "\r\n", 2);
        if (!nl) break;
        char *line = c->in + pos;
        size_t len = nl - line;
        pos += len + 2;
        if (proto == 0) {
            if (len > 6 && !memcmp(line, "VALUE ", 6)) {
                char *last = memrchr(line, ' ', len);
                c->skip = strtol(last + 1, NULL, 10) + 2;
            } else {
                if (!(len == 6 && !memcmp(line, "STORED", 6)) && !(len == 3 && !memcmp(line, "END", 3)))
                    errors++;
                replies++;
            }
        } else {
            if (line[0] == '$') {
                long n = strtol(line + 1, NULL, 10);
                if (n < 0) replies++;
                else c->skip = n + 2;
            } else {
                if (line[0] == '-') errors++;
                replies++;
            }
        }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return replies;
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(2);
    }
    return fd;
}

static void flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) return;
            perror("send");
            exit(2);
        }
        c->out_off += n;
    }
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT mc|redis|redis-wait set|get CONNS PIPELINE SECONDS VALUE_SIZE KEYS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    proto = !strcmp(argv[3], "mc") ? 0 : !strcmp(argv[3], "redis") ? 1 : 2;
    is_set = !strcmp(argv[4], "set");
    int nconns = atoi(argv[5]);
    pipeline = atoi(argv[6]);
    double seconds = atof(argv[7]);
    value_size = atoi(argv[8]);
    keyspace = atoi(argv[9]);
    value = malloc(value_size + 1);
    memset(value, 'x', value_size);
    value[value_size] = 0;
    srand(42);

    int ep = epoll_create1(0);
    conn_t *conns = calloc(nconns, sizeof(conn_t));
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->fd = connect_to(host, port);
        c->out = malloc((size_t)pipeline * (value_size + 128));
        c->in = malloc(BUF);
        build_batch(c);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    double start = now(), end = start + seconds;
    struct epoll_event events[256];
    while (now() < end) {
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) flush_out(c);
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t r = recv(c->fd, c->in + c->in_len, BUF - c->in_len, 0);
                    if (r < 0) {
                        if (errno == EAGAIN) break;
                        perror("recv");
                        exit(2);
                    }
                    if (r == 0) {
                        fprintf(stderr, "server closed the connection\n");
                        exit(2);
                    }
                    c->in_len += r;
                    c->pending -= parse(c);
                    if (c->pending <= 0) {
                        double t = now();
                        long us = (long)((t - c->sent_at) * 1e6);
                        if (us > MAX_US) us = MAX_US;
                        hist[us] += pipeline;
                        ops += pipeline;
                        if (t < end) {
                            build_batch(c);
                            flush_out(c);
                        }
                    }
                }
            }
        }
    }
    double elapsed = now() - start;
    long p50 = 0, p99 = 0, seen = 0;
    for (long us = 0; us <= MAX_US; us++) {
        seen += hist[us];
        if (!p50 && seen * 2 >= ops) p50 = us;
        if (!p99 && seen * 100 >= ops * 99) { p99 = us; break; }
    }
    printf("{\"ops\": %ld, \"seconds\": %.3f, \"ops_per_s\": %.0f, \"p50_us\": %ld, \"p99_us\": %ld, \"errors\": %ld}\n",
           ops, elapsed, ops / elapsed, p50, p99, errors);
    return 0;
}
