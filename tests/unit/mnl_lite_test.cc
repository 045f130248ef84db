// lib/nl/mnl_lite.cc, the libmnl functions the static build compiles in: messages and
// attributes built and read back byte for byte, validation, the callback runner's answer
// handling, and batches. Its own executable: it must not be linked with the real libmnl.

#include <doctest/doctest.h>

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

struct Seen {
  std::vector<uint16_t> types;
  std::vector<std::string> strings;
};

int collect(const nlattr* a, void* data) {
  auto* seen = static_cast<Seen*>(data);
  seen->types.push_back(mnl_attr_get_type(a));
  if (mnl_attr_get_type(a) == 3) seen->strings.push_back(mnl_attr_get_str(a));
  return MNL_CB_OK;
}

int stopAtTwo(const nlattr* a, void*) { return mnl_attr_get_type(a) == 2 ? MNL_CB_STOP : MNL_CB_OK; }

} // namespace

TEST_CASE("mnl_lite: a message with attributes is laid out as netlink wants and reads back") {
  alignas(4) char buf[512];
  std::memset(buf, 0xAB, sizeof(buf)); // stale bytes: padding must not leak them
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  CHECK(nlh->nlmsg_len == 16);
  CHECK(nlh->nlmsg_type == 0);
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  CHECK(nfg->nfgen_family == 0);
  CHECK(nlh->nlmsg_len == 20);
  CHECK(mnl_nlmsg_get_payload(nlh) == static_cast<void*>(nfg));

  mnl_attr_put_u8(nlh, 1, 7);
  CHECK(nlh->nlmsg_len == 28); // 4 header + 1, padded to 8
  const unsigned char* pad = reinterpret_cast<const unsigned char*>(buf) + 20 + 5;
  CHECK(pad[0] == 0);
  CHECK(pad[1] == 0);
  CHECK(pad[2] == 0);
  mnl_attr_put_u32(nlh, 2, 0x01020304);
  mnl_attr_put_strz(nlh, 3, "podsteer");
  mnl_attr_put_u64(nlh, 4, 0x1122334455667788ULL);
  nlattr* nest = mnl_attr_nest_start(nlh, 5);
  mnl_attr_put_u16(nlh, 6, 0xBEEF);
  mnl_attr_put_str(nlh, 3, "in");
  mnl_attr_nest_end(nlh, nest);
  CHECK(nest->nla_type == (NLA_F_NESTED | 5));
  CHECK(nest->nla_len == 4 + 8 + 8);
  CHECK(nlh->nlmsg_len % 4 == 0);
  CHECK(static_cast<char*>(mnl_nlmsg_get_payload_tail(nlh)) == buf + nlh->nlmsg_len);

  Seen top;
  CHECK(mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, &top) == MNL_CB_OK);
  CHECK(top.types == std::vector<uint16_t>{1, 2, 3, 4, 5});
  CHECK(top.strings == std::vector<std::string>{"podsteer"});
  CHECK(mnl_attr_parse(nlh, sizeof(nfgenmsg), stopAtTwo, nullptr) == MNL_CB_STOP);

  Seen inner;
  CHECK(mnl_attr_parse_nested(nest, collect, &inner) == MNL_CB_OK);
  CHECK(inner.types == std::vector<uint16_t>{6, 3});
  CHECK(inner.strings == std::vector<std::string>{"in"});

  // Values back through the getters, and validation by type.
  auto* a = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
  CHECK(mnl_attr_get_u8(a) == 7);
  CHECK(mnl_attr_validate(a, MNL_TYPE_U8) == 0);
  CHECK(mnl_attr_validate(a, MNL_TYPE_U32) == -1);
  CHECK(errno == ERANGE);
  a = mnl_attr_next(a);
  CHECK(mnl_attr_get_u32(a) == 0x01020304u);
  CHECK(mnl_attr_validate(a, MNL_TYPE_U32) == 0);
  CHECK(mnl_attr_validate(a, MNL_TYPE_U16) == -1); // longer than a u16
  a = mnl_attr_next(a);
  CHECK(mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0);
  CHECK(mnl_attr_get_payload_len(a) == 9);
  a = mnl_attr_next(a);
  CHECK(mnl_attr_get_u64(a) == 0x1122334455667788ULL);
  CHECK(mnl_attr_type_valid(a, 3) == -1);
  CHECK(errno == EOPNOTSUPP);
  CHECK(mnl_attr_type_valid(a, 4) == 1);
  a = mnl_attr_next(a);
  CHECK(mnl_attr_get_type(a) == 5); // the nested flag is not part of the type
  CHECK(mnl_attr_validate(a, MNL_TYPE_NESTED) == 0);
  // A string attribute without its NUL is not a NUL_STRING.
  auto* in = static_cast<nlattr*>(mnl_attr_get_payload(nest));
  in = mnl_attr_next(in);
  CHECK(mnl_attr_validate(in, MNL_TYPE_STRING) == 0);
  CHECK(mnl_attr_validate(in, MNL_TYPE_NUL_STRING) == -1);
  CHECK(errno == EINVAL);
}

TEST_CASE("mnl_lite: the callback runner stops at the ack, reports errors, checks sequence and sender") {
  alignas(4) char buf[256];
  // Two data messages, then an ack (error 0).
  char* at = buf;
  auto put = [&](uint16_t type, uint32_t seq, uint32_t pid, int error) {
    nlmsghdr* h = mnl_nlmsg_put_header(at);
    h->nlmsg_type = type;
    h->nlmsg_seq = seq;
    h->nlmsg_pid = pid;
    if (type == NLMSG_ERROR) {
      auto* e = static_cast<nlmsgerr*>(mnl_nlmsg_put_extra_header(h, sizeof(nlmsgerr)));
      e->error = error;
    } else {
      mnl_attr_put_u32(h, 1, seq);
    }
    at += h->nlmsg_len;
  };
  put(100, 5, 42, 0);
  put(100, 5, 42, 0);
  put(NLMSG_ERROR, 5, 42, 0);
  int count = 0;
  auto cb = [](const nlmsghdr*, void* d) {
    ++*static_cast<int*>(d);
    return MNL_CB_OK;
  };
  CHECK(mnl_cb_run(buf, at - buf, 5, 42, cb, &count) == MNL_CB_STOP);
  CHECK(count == 2);

  at = buf;
  put(NLMSG_ERROR, 6, 42, -ENOENT);
  CHECK(mnl_cb_run(buf, at - buf, 6, 42, cb, &count) == MNL_CB_ERROR);
  CHECK(errno == ENOENT);
  CHECK(mnl_cb_run(buf, at - buf, 7, 42, cb, &count) == -1); // another request's answer
  CHECK(errno == EPROTO);
  CHECK(mnl_cb_run(buf, at - buf, 6, 43, cb, &count) == -1); // another socket's answer
  CHECK(errno == ESRCH);

  at = buf;
  put(100, 8, 42, 0);
  put(NLMSG_DONE, 8, 42, 0);
  count = 0;
  CHECK(mnl_cb_run(buf, at - buf, 8, 42, cb, &count) == MNL_CB_STOP);
  CHECK(count == 1);
  // A truncated buffer: the partial message is not handed out.
  count = 0;
  CHECK(mnl_cb_run(buf, 10, 8, 42, cb, &count) == MNL_CB_OK);
  CHECK(count == 0);
}

TEST_CASE("mnl_lite: a batch takes messages until its limit and carries the one that did not fit") {
  alignas(4) char buf[64];
  mnl_nlmsg_batch* b = mnl_nlmsg_batch_start(buf, 48);
  REQUIRE(b != nullptr);
  CHECK(mnl_nlmsg_batch_is_empty(b));
  for (int i = 0; i < 2; ++i) {
    nlmsghdr* h = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b));
    mnl_attr_put_u32(h, 1, i);
    CHECK(mnl_nlmsg_batch_next(b));
  }
  CHECK(mnl_nlmsg_batch_size(b) == 48);
  CHECK(mnl_nlmsg_batch_head(b) == buf);
  nlmsghdr* h = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(b));
  h->nlmsg_len = 16; // fits the buffer, not the batch limit
  h->nlmsg_seq = 99;
  CHECK_FALSE(mnl_nlmsg_batch_next(b));
  mnl_nlmsg_batch_reset(b);
  CHECK(mnl_nlmsg_batch_size(b) == 16);
  CHECK(reinterpret_cast<nlmsghdr*>(buf)->nlmsg_seq == 99u);
  mnl_nlmsg_batch_stop(b);
}

TEST_CASE("mnl_lite: a netlink socket opens, binds to a kernel-chosen port and closes") {
  mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  REQUIRE(s != nullptr);
  CHECK(mnl_socket_get_fd(s) >= 0);
  REQUIRE(mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) == 0);
  CHECK(mnl_socket_get_portid(s) != 0u);
  CHECK(mnl_socket_close(s) == 0);
}
