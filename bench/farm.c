/* The real servers of bench/health.py: one process answers on one port for every address
 * routed to its network namespace (`ip route add local 198.18.0.0/16 dev lo`), so ten
 * thousand real servers cost one socket. A TCP check (connect, close) is accepted and
 * closed; an HTTP GET gets "200 ok". Every second it writes, atomically, how many
 * connections each peer address made: which checker did how many checks.
 *
 * In C because the checkers under test must be the bottleneck, not their targets: under
 * emulation a Python accept loop answers a few thousand connections a second, and the
 * benchmark asks for ten thousand checks a second from each checker.
 *
 *     farm PORT STATS_FILE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS 64
#define REQUEST_MAX 4096

static struct {
    uint32_t addr;
    unsigned long connections;
} peers[MAX_PEERS];
static int npeers;

static void count(uint32_t addr)
{
    for (int i = 0; i < npeers; i++) {
        if (peers[i].addr == addr) {
            peers[i].connections++;
            return;
        }
    }
    if (npeers < MAX_PEERS) {
        peers[npeers].addr = addr;
        peers[npeers].connections = 1;
        npeers++;
    }
}

static void write_stats(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (out == NULL)
        return;
    for (int i = 0; i < npeers; i++) {
        struct in_addr a = {.s_addr = peers[i].addr};
        fprintf(out, "%s %lu\n", inet_ntoa(a), peers[i].connections);
    }
    if (fclose(out) == 0)
        rename(tmp, path);
}

static const char RESPONSE[] =
    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: farm PORT STATS_FILE\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Thousands of connections open at once: at the default limit of 1,024 descriptors
     * accept failed (EMFILE), and so did the counts file's fopen, and the benchmark
     * read 0 checks/s from both checkers at 10,000 real servers. */
    struct rlimit files = {.rlim_cur = 65536, .rlim_max = 65536};   /* root may */
    if (setrlimit(RLIMIT_NOFILE, &files) != 0 && getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(listener, (struct sockaddr *)&at, sizeof at) != 0 || listen(listener, 65535) != 0) {
        perror("farm: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    /* What a connection has sent so far, when a request comes in pieces. */
    static char pending[65536][4];
    static unsigned char pending_len[65536];
    time_t written = 0;
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(ep, events, 512, 200);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                /* A bounded batch: under ten thousand connects a second from both
                 * checkers the queue never empties, and an unbounded loop starved the
                 * answers and the counts written below (the benchmark read 0 checks/s). */
                for (int batch = 0; batch < 1024; batch++) {
                    struct sockaddr_in peer;
                    socklen_t len = sizeof peer;
                    int conn = accept4(listener, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK);
                    if (conn < 0)
                        break;
                    count(peer.sin_addr.s_addr);
                    if (conn >= 65536) {
                        close(conn);
                        continue;
                    }
                    pending_len[conn] = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = conn};
                    epoll_ctl(ep, EPOLL_CTL_ADD, conn, &cev);
                }
                continue;
            }
            char buf[REQUEST_MAX];
            ssize_t got = read(fd, buf, sizeof buf);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got > 0) {
                /* The end of the headers may straddle two reads: keep the last bytes. */
                char joined[4 + REQUEST_MAX];
                size_t had = pending_len[fd];
                memcpy(joined, pending[fd], had);
                memcpy(joined + had, buf, (size_t)got);
                size_t all = had + (size_t)got;
                if (memmem(joined, all, "\r\n\r\n", 4) == NULL) {
                    size_t keep = all < 3 ? all : 3;
                    memcpy(pending[fd], joined + all - keep, keep);
                    pending_len[fd] = (unsigned char)keep;
                    continue;
                }
                if (write(fd, RESPONSE, sizeof RESPONSE - 1) < 0) {
                    /* the checker gave up: nothing to answer */
                }
            }
            close(fd); /* EOF (a TCP check), an error, or the answer sent */
        }
        time_t now = time(NULL);
        if (now != written) {
            write_stats(argv[2]);
            written = now;
        }
    }
}
