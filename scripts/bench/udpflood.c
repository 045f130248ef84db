/* udpflood: send small UDP datagrams as fast as one CPU can for a while.
 *
 *   udpflood DST_IP PORT SECONDS [PAYLOAD_BYTES]
 *
 * sendmmsg() in batches of 64 keeps the syscall share small, so the rate is set by what
 * each packet costs on its way (veth, the node's prerouting hooks, policy routing,
 * forwarding): over veth all of that runs in softirq on the sending CPU. Prints
 * "<datagrams sent> <seconds>". The receiving side counts what arrived.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: udpflood DST_IP PORT SECONDS [PAYLOAD_BYTES]\n");
    return 2;
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
    fprintf(stderr, "udpflood: bad address %s\n", argv[1]);
    return 2;
  }
  double secs = atof(argv[3]);
  size_t len = argc > 4 ? (size_t)atoi(argv[4]) : 64;
  char payload[1500] = {0};
  if (len > sizeof(payload)) len = sizeof(payload);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
    perror("udpflood: socket/connect");
    return 1;
  }
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload;
    iov[i].iov_len = len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned long long sent = 0;
  double t0 = now(), t = t0;
  while (t - t0 < secs) {
    for (int k = 0; k < 16; k++) {
      int n = sendmmsg(fd, msgs, BATCH, 0);
      if (n > 0) {
        sent += n;
      } else if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
        perror("udpflood: sendmmsg");
        return 1;
      }
    }
    t = now();
  }
  printf("%llu %.6f\n", sent, t - t0);
  return 0;
}
