/*
 * One SMTP connection sending messages one after another, as most test suites
 * send: each transaction's MAIL, RCPT and DATA go in one write (RFC 2920), then
 * the content and the final dot, then the client waits for the 250 before the
 * next message. Prints the rate and the client-side wait from the end of DATA
 * (the final dot written) to the 250 read, as one line of key=value pairs:
 *
 *   msgs=20000 secs=2.104 rate=9506 wait_p50_us=61 wait_p99_us=140 wait_max_us=900
 *
 *   cc -O2 -Wall -o bench/pipeline_send bench/pipeline_send.c
 *   bench/pipeline_send 127.0.0.1 1025 20000 1024
 *
 * Used by bench/ingest.py. Every reply is checked (2xx/3xx as SMTP says), so a
 * server that refuses a message stops the run with a message on stderr and exit 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char in[65536];
static size_t in_len;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "pipeline_send: %s\n", what);
    exit(1);
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write failed");
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads one whole reply (the last line has a space after the code) and returns
 * its code; exits if the code's first digit is not `want`. */
static int reply(int fd, char want) {
    for (;;) {
        char *line = in;
        char *end;
        while ((end = memmem(line, in_len - (size_t)(line - in), "\r\n", 2)) != NULL) {
            int last = end - line >= 4 && line[3] == ' ';
            if (last || end - line == 3) {
                int code = atoi(line);
                size_t used = (size_t)(end + 2 - in);
                if (line[0] != want) {
                    *end = 0;
                    fprintf(stderr, "pipeline_send: unexpected reply: %s\n", line);
                    exit(1);
                }
                memmove(in, in + used, in_len - used);
                in_len -= used;
                return code;
            }
            line = end + 2;
        }
        if (in_len == sizeof in) die("reply too long");
        ssize_t n = read(fd, in + in_len, sizeof in - in_len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("connection closed");
        in_len += (size_t)n;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) die("usage: pipeline_send HOST PORT MESSAGES BODY_BYTES");
    long count = atol(argv[3]), size = atol(argv[4]);
    if (count <= 0 || size < 0) die("MESSAGES must be > 0 and BODY_BYTES >= 0");

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) die("HOST must be an IPv4 address");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("cannot connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    /* A body of `size` bytes in lines of 64 (62 characters and CRLF). */
    char *content = malloc((size_t)size + 256);
    size_t len = (size_t)sprintf(content,
                                 "From: <from@bench.test>\r\nTo: <to@bench.test>\r\n"
                                 "Subject: pipelined\r\n\r\n");
    for (long i = 0; i < size; i++)
        content[len++] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    if (size % 64 != 0) {
        content[len++] = '\r';
        content[len++] = '\n';
    }
    len += (size_t)sprintf(content + len, ".\r\n");
    static const char envelope[] =
        "MAIL FROM:<from@bench.test>\r\nRCPT TO:<to@bench.test>\r\nDATA\r\n";

    reply(fd, '2');
    write_all(fd, "EHLO bench.test\r\n", 17);
    reply(fd, '2');

    double *waits = malloc(sizeof(double) * (size_t)count);
    double start = now();
    for (long i = 0; i < count; i++) {
        write_all(fd, envelope, sizeof envelope - 1);
        reply(fd, '2');
        reply(fd, '2');
        reply(fd, '3');
        write_all(fd, content, len);
        double sent = now();
        reply(fd, '2');
        waits[i] = now() - sent;
    }
    double secs = now() - start;
    write_all(fd, "QUIT\r\n", 6);
    reply(fd, '2');
    close(fd);

    qsort(waits, (size_t)count, sizeof(double), cmp_double);
    printf("msgs=%ld secs=%.3f rate=%.0f wait_p50_us=%.0f wait_p99_us=%.0f wait_max_us=%.0f\n",
           count, secs, count / secs, waits[count / 2] * 1e6, waits[(count * 99) / 100] * 1e6,
           waits[count - 1] * 1e6);
    return 0;
}
