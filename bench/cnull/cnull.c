/*
 * cnull: a single-threaded C do-nothing xenstore server, the ceiling for
 * a server on this socket and machine without any Go runtime.
 *
 * It answers exactly what bench/cmd/nullstored answers: every whole
 * xs_wire request gets a reply with the request's type, req_id and tx_id
 * and the payload "OK\0" ("1\0" for TRANSACTION_START, so that clients
 * get a transaction id). It keeps no state and fires no watches. A header
 * whose length exceeds 4096 closes that client, as C xenstored does.
 *
 * One thread, one epoll set, non-blocking sockets, level-triggered. Per
 * readable client: one read(2) into its input buffer, every whole request
 * in it answered into its output buffer, one write(2) of all the replies
 * (EPOLLOUT only while a write was short).
 *
 *   cnull --socket PATH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { HDR = 16, PAYLOAD_MAX = 4096, XS_TRANSACTION_START = 6 };
enum { IN_CAP = 65536, OUT_CAP = 65536 };

struct client {
	int fd;
	size_t in_len;          /* bytes in in[] */
	size_t out_off, out_len; /* out[out_off:out_len] unsent */
	int want_out;            /* EPOLLOUT armed */
	unsigned char in[IN_CAP];
	unsigned char out[OUT_CAP];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4); /* xs_wire is host-endian (little-endian here) */
	return v;
}

static void drop(int ep, struct client *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* flush writes the unsent output; -1 on a write error. */
static int flush(int ep, struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			break;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	int want = c->out_len > 0;
	if (want != c->want_out) {
		/* Stop reading while output is stuck: back-pressure. */
		struct epoll_event ev = {.events = want ? EPOLLOUT : EPOLLIN, .data.ptr = c};
		if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			return -1;
		c->want_out = want;
	}
	return 0;
}

/* answer replies to every whole request in c->in; -1 on a bad header. */
static int answer(struct client *c)
{
	size_t off = 0;
	while (c->in_len - off >= HDR) {
		const unsigned char *h = c->in + off;
		uint32_t len = get32(h + 12);
		if (len > PAYLOAD_MAX)
			return -1;
		if (c->in_len - off < HDR + len)
			break;
		if (OUT_CAP - c->out_len < HDR + 3)
			break; /* answered once the output drains */
		uint32_t type = get32(h);
		const char *p = type == XS_TRANSACTION_START ? "1" : "OK";
		uint32_t plen = (uint32_t)strlen(p) + 1;
		unsigned char *o = c->out + c->out_len;
		memcpy(o, h, 12); /* type, req_id, tx_id */
		memcpy(o + 12, &plen, 4);
		memcpy(o + HDR, p, plen);
		c->out_len += HDR + plen;
		off += HDR + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	return 0;
}

/* serve answers and sends until no whole request is left or output is
 * stuck; -1 drops the client. */
static int serve(int ep, struct client *c)
{
	for (;;) {
		size_t before = c->in_len;
		if (answer(c) < 0 || flush(ep, c) < 0)
			return -1;
		if (c->want_out || c->in_len == before)
			return 0;
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if ((!strcmp(argv[i], "--socket") || !strcmp(argv[i], "-socket")) && i + 1 < argc)
			path = argv[++i];
		else
			path = NULL, i = argc;
	}
	if (!path) {
		fprintf(stderr, "usage: cnull --socket PATH\n");
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "cnull: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, path);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction act = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns */
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);

	unlink(path);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 128) < 0) {
		perror("cnull: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0) {
		perror("cnull: epoll");
		return 1;
	}
	struct epoll_event evs[64];
	while (!stop) {
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("cnull: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct client *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					c = malloc(sizeof *c);
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->in_len = c->out_off = c->out_len = 0;
					c->want_out = 0;
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
						close(fd);
						free(c);
					}
				}
				continue;
			}
			if (c->want_out) {
				/* Writable again: send, then answer what waited. */
				if (flush(ep, c) < 0 || serve(ep, c) < 0)
					drop(ep, c);
				continue;
			}
			ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				/* Hang-up: best effort for what was answered. */
				flush(ep, c);
				drop(ep, c);
				continue;
			}
			if (r > 0)
				c->in_len += (size_t)r;
			if (serve(ep, c) < 0)
				drop(ep, c);
		}
	}
	unlink(path);
	return 0;
}
