// The libmnl functions that libnftnl and podsteer call, for the lean build only
// (-Dlink_static=true). Debian ships libmnl as a shared library alone, and loading one
// shared library is a measurable share of a CNI command (docs/bench.md): with these
// linked in, the lean podsteer is one fully static executable. The shared build
// (-Dlink_static=false) links the real libmnl and does not compile this file.
//
// Written against the declarations in <libmnl/libmnl.h> and the netlink message and
// attribute layout of <linux/netlink.h>; the behaviour callers rely on (return values,
// errno, alignment and padding) is the documented libmnl API.

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

char* tail(const nlmsghdr* nlh) { return (char*)nlh + MNL_ALIGN(nlh->nlmsg_len); }

size_t typeLength(mnl_attr_data_type type) {
  switch (type) {
  case MNL_TYPE_U8: return sizeof(uint8_t);
  case MNL_TYPE_U16: return sizeof(uint16_t);
  case MNL_TYPE_U32: return sizeof(uint32_t);
  case MNL_TYPE_U64: return sizeof(uint64_t);
  case MNL_TYPE_MSECS: return sizeof(uint64_t);
  default: return 0;
  }
}

int validate(const nlattr* attr, mnl_attr_data_type type, size_t expected) {
  const size_t len = mnl_attr_get_payload_len(attr);
  const char* data = static_cast<const char*>(mnl_attr_get_payload(attr));
  if (len < expected) {
    errno = ERANGE;
    return -1;
  }
  switch (type) {
  case MNL_TYPE_FLAG:
    if (len > 0) {
      errno = ERANGE;
      return -1;
    }
    break;
  case MNL_TYPE_NUL_STRING:
    if (len == 0) {
      errno = ERANGE;
      return -1;
    }
    if (data[len - 1] != '\0') {
      errno = EINVAL;
      return -1;
    }
    break;
  case MNL_TYPE_STRING:
    if (len == 0) {
      errno = ERANGE;
      return -1;
    }
    break;
  case MNL_TYPE_NESTED:
    if (len != 0 && len < MNL_ATTR_HDRLEN) {
      errno = ERANGE;
      return -1;
    }
    break;
  default: break;
  }
  if (expected != 0 && len > expected) {
    errno = ERANGE;
    return -1;
  }
  return 0;
}

int parseRange(const nlattr* attr, const char* end, mnl_attr_cb_t cb, void* data) {
  int ret = MNL_CB_OK;
  for (; mnl_attr_ok(attr, static_cast<int>(end - (const char*)attr)); attr = mnl_attr_next(attr))
    if ((ret = cb(attr, data)) <= MNL_CB_STOP) return ret;
  return ret;
}

} // namespace

struct mnl_socket {
  int fd;
  sockaddr_nl addr;
};

struct mnl_nlmsg_batch {
  char* buf;
  size_t limit;
  size_t used;
  char* cur;
  bool overflow; // the current message did not fit: reset carries it over
};

extern "C" {

// ---- messages -----------------------------------------------------------------------
size_t mnl_nlmsg_size(size_t len) { return len + MNL_NLMSG_HDRLEN; }
size_t mnl_nlmsg_get_payload_len(const nlmsghdr* nlh) { return nlh->nlmsg_len - MNL_NLMSG_HDRLEN; }

nlmsghdr* mnl_nlmsg_put_header(void* buf) {
  memset(buf, 0, MNL_NLMSG_HDRLEN);
  auto* nlh = static_cast<nlmsghdr*>(buf);
  nlh->nlmsg_len = MNL_NLMSG_HDRLEN;
  return nlh;
}

void* mnl_nlmsg_put_extra_header(nlmsghdr* nlh, size_t size) {
  char* at = (char*)nlh + nlh->nlmsg_len;
  nlh->nlmsg_len += MNL_ALIGN(size);
  memset(at, 0, MNL_ALIGN(size));
  return at;
}

void* mnl_nlmsg_get_payload(const nlmsghdr* nlh) { return (char*)nlh + MNL_NLMSG_HDRLEN; }
void* mnl_nlmsg_get_payload_offset(const nlmsghdr* nlh, size_t offset) {
  return (char*)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);
}
void* mnl_nlmsg_get_payload_tail(const nlmsghdr* nlh) { return tail(nlh); }

bool mnl_nlmsg_ok(const nlmsghdr* nlh, int len) {
  return len >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len >= sizeof(nlmsghdr) &&
         static_cast<int>(nlh->nlmsg_len) <= len;
}

nlmsghdr* mnl_nlmsg_next(const nlmsghdr* nlh, int* len) {
  *len -= MNL_ALIGN(nlh->nlmsg_len);
  return (nlmsghdr*)tail(nlh);
}

bool mnl_nlmsg_seq_ok(const nlmsghdr* nlh, unsigned int seq) {
  return nlh->nlmsg_seq == 0 || seq == 0 || nlh->nlmsg_seq == seq;
}
bool mnl_nlmsg_portid_ok(const nlmsghdr* nlh, unsigned int portid) {
  return nlh->nlmsg_pid == 0 || portid == 0 || nlh->nlmsg_pid == portid;
}

// ---- batches --------------------------------------------------------------------------
mnl_nlmsg_batch* mnl_nlmsg_batch_start(void* buf, size_t limit) {
  auto* b = static_cast<mnl_nlmsg_batch*>(malloc(sizeof(mnl_nlmsg_batch)));
  if (b == nullptr) return nullptr;
  b->buf = static_cast<char*>(buf);
  b->limit = limit;
  b->used = 0;
  b->cur = b->buf;
  b->overflow = false;
  return b;
}
void mnl_nlmsg_batch_stop(mnl_nlmsg_batch* b) { free(b); }
bool mnl_nlmsg_batch_next(mnl_nlmsg_batch* b) {
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(b->cur);
  if (b->used + nlh->nlmsg_len > b->limit) {
    b->overflow = true;
    return false;
  }
  b->cur += nlh->nlmsg_len;
  b->used += nlh->nlmsg_len;
  return true;
}
void mnl_nlmsg_batch_reset(mnl_nlmsg_batch* b) {
  if (b->overflow) {
    // The message that did not fit becomes the first of the next batch.
    const auto len = reinterpret_cast<const nlmsghdr*>(b->cur)->nlmsg_len;
    memmove(b->buf, b->cur, len);
    b->used = len;
    b->cur = b->buf + len;
    b->overflow = false;
  } else {
    b->used = 0;
    b->cur = b->buf;
  }
}
size_t mnl_nlmsg_batch_size(mnl_nlmsg_batch* b) { return b->used; }
void* mnl_nlmsg_batch_head(mnl_nlmsg_batch* b) { return b->buf; }
void* mnl_nlmsg_batch_current(mnl_nlmsg_batch* b) { return b->cur; }
bool mnl_nlmsg_batch_is_empty(mnl_nlmsg_batch* b) { return b->used == 0; }

// ---- attributes -----------------------------------------------------------------------
uint16_t mnl_attr_get_type(const nlattr* attr) { return attr->nla_type & NLA_TYPE_MASK; }
uint16_t mnl_attr_get_len(const nlattr* attr) { return attr->nla_len; }
uint16_t mnl_attr_get_payload_len(const nlattr* attr) { return attr->nla_len - MNL_ATTR_HDRLEN; }
void* mnl_attr_get_payload(const nlattr* attr) { return (char*)attr + MNL_ATTR_HDRLEN; }

bool mnl_attr_ok(const nlattr* attr, int len) {
  return len >= static_cast<int>(sizeof(nlattr)) && attr->nla_len >= sizeof(nlattr) &&
         static_cast<int>(attr->nla_len) <= len;
}
nlattr* mnl_attr_next(const nlattr* attr) { return (nlattr*)((char*)attr + MNL_ALIGN(attr->nla_len)); }

int mnl_attr_type_valid(const nlattr* attr, uint16_t maxtype) {
  if (mnl_attr_get_type(attr) > maxtype) {
    errno = EOPNOTSUPP;
    return -1;
  }
  return 1;
}
int mnl_attr_validate(const nlattr* attr, mnl_attr_data_type type) {
  if (type >= MNL_TYPE_MAX) {
    errno = EINVAL;
    return -1;
  }
  return validate(attr, type, typeLength(type));
}
int mnl_attr_validate2(const nlattr* attr, mnl_attr_data_type type, size_t len) {
  if (type >= MNL_TYPE_MAX) {
    errno = EINVAL;
    return -1;
  }
  return validate(attr, type, len);
}

int mnl_attr_parse(const nlmsghdr* nlh, unsigned int offset, mnl_attr_cb_t cb, void* data) {
  return parseRange(static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset)), tail(nlh), cb, data);
}
int mnl_attr_parse_nested(const nlattr* nested, mnl_attr_cb_t cb, void* data) {
  return parseRange(static_cast<const nlattr*>(mnl_attr_get_payload(nested)),
                    (const char*)mnl_attr_get_payload(nested) + mnl_attr_get_payload_len(nested), cb, data);
}
int mnl_attr_parse_payload(const void* payload, size_t len, mnl_attr_cb_t cb, void* data) {
  return parseRange(static_cast<const nlattr*>(payload), static_cast<const char*>(payload) + len, cb, data);
}

uint8_t mnl_attr_get_u8(const nlattr* attr) { return *static_cast<const uint8_t*>(mnl_attr_get_payload(attr)); }
uint16_t mnl_attr_get_u16(const nlattr* attr) {
  uint16_t v;
  memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
  return v;
}
uint32_t mnl_attr_get_u32(const nlattr* attr) {
  uint32_t v;
  memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
  return v;
}
uint64_t mnl_attr_get_u64(const nlattr* attr) {
  uint64_t v;
  memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
  return v;
}
const char* mnl_attr_get_str(const nlattr* attr) { return static_cast<const char*>(mnl_attr_get_payload(attr)); }

void mnl_attr_put(nlmsghdr* nlh, uint16_t type, size_t len, const void* data) {
  auto* attr = reinterpret_cast<nlattr*>(tail(nlh));
  const size_t total = MNL_ATTR_HDRLEN + len;
  attr->nla_type = type;
  attr->nla_len = static_cast<uint16_t>(total);
  char* payload = (char*)attr + MNL_ATTR_HDRLEN;
  if (len != 0) memcpy(payload, data, len);
  // The padding is part of the message: it must not carry stale bytes.
  if (MNL_ALIGN(len) != len) memset(payload + len, 0, MNL_ALIGN(len) - len);
  nlh->nlmsg_len += MNL_ALIGN(total);
}
void mnl_attr_put_u8(nlmsghdr* nlh, uint16_t type, uint8_t v) { mnl_attr_put(nlh, type, sizeof(v), &v); }
void mnl_attr_put_u16(nlmsghdr* nlh, uint16_t type, uint16_t v) { mnl_attr_put(nlh, type, sizeof(v), &v); }
void mnl_attr_put_u32(nlmsghdr* nlh, uint16_t type, uint32_t v) { mnl_attr_put(nlh, type, sizeof(v), &v); }
void mnl_attr_put_u64(nlmsghdr* nlh, uint16_t type, uint64_t v) { mnl_attr_put(nlh, type, sizeof(v), &v); }
void mnl_attr_put_str(nlmsghdr* nlh, uint16_t type, const char* s) { mnl_attr_put(nlh, type, strlen(s), s); }
void mnl_attr_put_strz(nlmsghdr* nlh, uint16_t type, const char* s) { mnl_attr_put(nlh, type, strlen(s) + 1, s); }

nlattr* mnl_attr_nest_start(nlmsghdr* nlh, uint16_t type) {
  auto* start = reinterpret_cast<nlattr*>(tail(nlh));
  start->nla_type = NLA_F_NESTED | type;
  nlh->nlmsg_len += MNL_ALIGN(sizeof(nlattr));
  return start;
}
void mnl_attr_nest_end(nlmsghdr* nlh, nlattr* start) {
  start->nla_len = static_cast<uint16_t>(tail(nlh) - (char*)start);
}
void mnl_attr_nest_cancel(nlmsghdr* nlh, nlattr* start) {
  nlh->nlmsg_len -= static_cast<uint32_t>(tail(nlh) - (char*)start);
}

// ---- callbacks ------------------------------------------------------------------------
int mnl_cb_run(const void* buf, size_t numbytes, unsigned int seq, unsigned int portid, mnl_cb_t cb, void* data) {
  int ret = MNL_CB_OK;
  int len = static_cast<int>(numbytes);
  for (auto* nlh = static_cast<const nlmsghdr*>(buf); mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
    if (!mnl_nlmsg_portid_ok(nlh, portid)) {
      errno = ESRCH;
      return -1;
    }
    if (!mnl_nlmsg_seq_ok(nlh, seq)) {
      errno = EPROTO;
      return -1;
    }
    if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) { // the dump changed under us: start again
      errno = EINTR;
      return -1;
    }
    if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) {
      if (cb != nullptr && (ret = cb(nlh, data)) <= MNL_CB_STOP) return ret;
      continue;
    }
    switch (nlh->nlmsg_type) {
    case NLMSG_ERROR: {
      if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(nlmsgerr))) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
      }
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      // error 0 is the acknowledgement that ends a request; anything else fails it.
      errno = err->error < 0 ? -err->error : err->error;
      return err->error == 0 ? MNL_CB_STOP : MNL_CB_ERROR;
    }
    case NLMSG_DONE: return MNL_CB_STOP;
    default: break; // NLMSG_NOOP, NLMSG_OVERRUN
    }
  }
  return ret;
}

// ---- sockets --------------------------------------------------------------------------
mnl_socket* mnl_socket_open2(int bus, int flags) {
  auto* nl = static_cast<mnl_socket*>(calloc(1, sizeof(mnl_socket)));
  if (nl == nullptr) return nullptr;
  nl->fd = socket(AF_NETLINK, SOCK_RAW | flags, bus);
  if (nl->fd < 0) {
    free(nl);
    return nullptr;
  }
  return nl;
}
mnl_socket* mnl_socket_open(int bus) { return mnl_socket_open2(bus, 0); }

int mnl_socket_bind(mnl_socket* nl, unsigned int groups, pid_t pid) {
  nl->addr.nl_family = AF_NETLINK;
  nl->addr.nl_groups = groups;
  nl->addr.nl_pid = static_cast<uint32_t>(pid);
  if (bind(nl->fd, reinterpret_cast<sockaddr*>(&nl->addr), sizeof(nl->addr)) < 0) return -1;
  // The kernel picks the port id when asked for 0: read back what it chose.
  socklen_t len = sizeof(nl->addr);
  if (getsockname(nl->fd, reinterpret_cast<sockaddr*>(&nl->addr), &len) < 0) return -1;
  if (len != sizeof(nl->addr) || nl->addr.nl_family != AF_NETLINK) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

int mnl_socket_close(mnl_socket* nl) {
  int ret = close(nl->fd);
  free(nl);
  return ret;
}
int mnl_socket_get_fd(const mnl_socket* nl) { return nl->fd; }
unsigned int mnl_socket_get_portid(const mnl_socket* nl) { return nl->addr.nl_pid; }

ssize_t mnl_socket_sendto(const mnl_socket* nl, const void* buf, size_t len) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  return sendto(nl->fd, buf, len, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel));
}

ssize_t mnl_socket_recvfrom(const mnl_socket* nl, void* buf, size_t size) {
  sockaddr_nl from{};
  iovec iov{buf, size};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof(from);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = recvmsg(nl->fd, &msg, 0);
  if (n < 0) return n;
  if (msg.msg_flags & MSG_TRUNC) { // the buffer was too small for the datagram
    errno = ENOSPC;
    return -1;
  }
  if (msg.msg_namelen != sizeof(from)) {
    errno = EINVAL;
    return -1;
  }
  return n;
}

int mnl_socket_setsockopt(const mnl_socket* nl, int type, void* buf, socklen_t len) {
  return setsockopt(nl->fd, SOL_NETLINK, type, buf, len);
}
int mnl_socket_getsockopt(const mnl_socket* nl, int type, void* buf, socklen_t* len) {
  return getsockopt(nl->fd, SOL_NETLINK, type, buf, len);
}

} // extern "C"
