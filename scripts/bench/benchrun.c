/* benchrun: time one process start-to-exit, the way a container runtime pays for it.
 *
 *   benchrun [-n NETNS] [-c NETNS] [-i STDIN] [-o STDOUT] [-e STDERR] -- PROG ARGS...
 *   benchrun [...] -- PROG ARGS... --- [<STDIN] PROG ARGS... --- ...
 *
 * -n  enter this network namespace before forking (the "node": the runtime runs CNI
 *     plugins there); not timed, as the runtime is already in it.
 * -c  the child enters this network namespace itself before exec (istio-cni's
 *     setns-then-iptables-restore); timed, because that setns is part of the path.
 * -i/-o/-e  files for the child's stdin/stdout/stderr (default /dev/null).
 *
 * The clock runs from just before fork() to wait4() returning; the environment is passed
 * through unchanged. Prints one line: "<nanoseconds> <exit status> <ru_maxrss KiB>"
 * (exit status 128+N for a signal, 127 when exec failed).
 *
 * With "---" between commands, they run one after the other and the clock covers them
 * all (a tool that execs several programs per pod, like istio-cni). With -c, the runner
 * enters that namespace once, inside the timed section, and the commands inherit it. A
 * command may start with "<FILE" for its own stdin. The first failing command ends the
 * sequence; its status is the one printed; ru_maxrss is the largest of the commands.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int open_or_die(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "benchrun: %s: %s\n", path, strerror(errno));
    exit(126);
  }
  return fd;
}

static void enter(const char *path) {
  int fd = open_or_die(path, O_RDONLY);
  if (setns(fd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "benchrun: setns %s: %s\n", path, strerror(errno));
    exit(126);
  }
  close(fd);
}

int main(int argc, char **argv) {
  const char *node = NULL, *child_ns = NULL, *in = "/dev/null", *out = "/dev/null",
             *err = "/dev/null";
  int opt;
  while ((opt = getopt(argc, argv, "+n:c:i:o:e:")) != -1) {
    switch (opt) {
      case 'n': node = optarg; break;
      case 'c': child_ns = optarg; break;
      case 'i': in = optarg; break;
      case 'o': out = optarg; break;
      case 'e': err = optarg; break;
      default:
        fprintf(stderr, "usage: benchrun [-n NETNS] [-c NETNS] [-i F] [-o F] [-e F] -- PROG ARGS\n");
        return 126;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "benchrun: no program\n");
    return 126;
  }
  if (node) enter(node);
  int fin = open_or_die(in, O_RDONLY);
  int fout = open_or_die(out, O_WRONLY | O_CREAT | O_TRUNC);
  int ferr = open_or_die(err, O_WRONLY | O_CREAT | O_TRUNC);
  int cfd = child_ns ? open_or_die(child_ns, O_RDONLY) : -1;

  struct timespec t0, t1;
  int status = 0;
  long maxrss = 0;
  long long cpu_us = 0; /* user + system time of the programs run */
  int seq = 0;
  for (int i = optind; i < argc; ++i)
    if (strcmp(argv[i], "---") == 0) seq = 1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (seq && cfd >= 0 && setns(cfd, CLONE_NEWNET) != 0) {
    fprintf(stderr, "benchrun: setns %s: %s\n", child_ns, strerror(errno));
    return 126;
  }
  for (int start = optind; start < argc;) {
    int end = start;
    while (end < argc && strcmp(argv[end], "---") != 0) ++end;
    argv[end < argc ? end : argc] = NULL;
    int cin = fin;
    if (argv[start] && argv[start][0] == '<') cin = open_or_die(argv[start++] + 1, O_RDONLY);
    pid_t pid = fork();
    if (pid < 0) {
      perror("benchrun: fork");
      return 126;
    }
    if (pid == 0) {
      if (!seq && cfd >= 0 && setns(cfd, CLONE_NEWNET) != 0) _exit(125);
      if (dup2(cin, 0) < 0 || dup2(fout, 1) < 0 || dup2(ferr, 2) < 0) _exit(125);
      execv(argv[start], argv + start);
      _exit(127);
    }
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
      if (errno != EINTR) {
        perror("benchrun: wait4");
        return 126;
      }
    }
    if (cin != fin) close(cin);
    if (ru.ru_maxrss > maxrss) maxrss = ru.ru_maxrss;
    cpu_us += (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) break;
    start = end + 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("%lld %d %ld %lld\n", ns, rc, maxrss, cpu_us);
  return 0;
}
