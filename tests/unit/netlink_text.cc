#include "netlink_text.h"

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>

#include <sstream>

#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "nl/handles.h"

namespace podsteer::test {

namespace {

// Trailing blanks dropped from every line, every line ended.
std::string tidy(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string print(int (*fn)(char*, size_t, const void*), const void* obj) {
  std::string buf(1 << 16, '\0');
  const int n = fn(buf.data(), buf.size(), obj);
  buf.resize(n < 0 ? 0 : std::min(static_cast<size_t>(n), buf.size() - 1));
  return buf;
}

std::string printChain(const nftnl_chain* c) {
  return print([](char* b, size_t n, const void* o) {
    return nftnl_chain_snprintf(b, n, static_cast<const nftnl_chain*>(o), NFTNL_OUTPUT_DEFAULT, 0);
  }, c);
}
std::string printSet(const nftnl_set* s) {
  return print([](char* b, size_t n, const void* o) {
    return nftnl_set_snprintf(b, n, static_cast<const nftnl_set*>(o), NFTNL_OUTPUT_DEFAULT, 0);
  }, s);
}
std::string printRule(const nftnl_rule* r) {
  return print([](char* b, size_t n, const void* o) {
    return nftnl_rule_snprintf(b, n, static_cast<const nftnl_rule*>(o), NFTNL_OUTPUT_DEFAULT, 0);
  }, r);
}

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Visits the attributes in [begin, end) until `f` returns false; false if it stopped.
template <typename F> bool eachAttr(const void* begin, const void* end, F f) {
  const auto* a = static_cast<const nlattr*>(begin);
  auto left = [&] { return static_cast<int>(static_cast<const char*>(end) - reinterpret_cast<const char*>(a)); };
  for (; mnl_attr_ok(a, left()); a = mnl_attr_next(a))
    if (!f(a)) return false;
  return true;
}
template <typename F> bool eachNested(const nlattr* nest, F f) {
  const char* p = static_cast<const char*>(mnl_attr_get_payload(nest));
  return eachAttr(p, p + mnl_attr_get_payload_len(nest), f);
}

// The NFTA_DATA_VALUE inside a data nest (a key or a value).
bool dataValue(const nlattr* nest, std::vector<uint8_t>& out) {
  bool found = false;
  eachNested(nest, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) != NFTA_DATA_VALUE) return true;
    const auto* p = static_cast<const uint8_t*>(mnl_attr_get_payload(a));
    out.assign(p, p + mnl_attr_get_payload_len(a));
    found = true;
    return false;
  });
  return found;
}

bool parseElement(const nlattr* elem, nftnl_set_elem* e) {
  return eachNested(elem, [&](const nlattr* f) {
    std::vector<uint8_t> bytes;
    switch (mnl_attr_get_type(f)) {
    case NFTA_SET_ELEM_KEY:
      if (!dataValue(f, bytes)) return false;
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, bytes.data(), static_cast<uint32_t>(bytes.size()));
      return true;
    case NFTA_SET_ELEM_DATA:
      if (!dataValue(f, bytes)) return false;
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, bytes.data(), static_cast<uint32_t>(bytes.size()));
      return true;
    case NFTA_SET_ELEM_FLAGS: nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, ntohl(mnl_attr_get_u32(f))); return true;
    default: return false; // nothing else is expected from podsteer
    }
  });
}

// A NEWSETELEM message as a set with its elements. Walked by hand: libnftnl 1.2.4's
// nftnl_set_elems_nlmsg_parse refuses elements that carry flags (interval ends).
nl::SetPtr parseElements(const nlmsghdr* nlh) {
  nl::SetPtr set(nftnl_set_alloc());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY,
                    static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family);
  const bool ok = eachAttr(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)), mnl_nlmsg_get_payload_tail(nlh),
                           [&](const nlattr* a) {
                             switch (mnl_attr_get_type(a)) {
                             case NFTA_SET_ELEM_LIST_TABLE:
                               nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, mnl_attr_get_str(a));
                               return true;
                             case NFTA_SET_ELEM_LIST_SET:
                               nftnl_set_set_str(set.get(), NFTNL_SET_NAME, mnl_attr_get_str(a));
                               return true;
                             case NFTA_SET_ELEM_LIST_ELEMENTS:
                               return eachNested(a, [&](const nlattr* elem) {
                                 nftnl_set_elem* e = nftnl_set_elem_alloc();
                                 nftnl_set_elem_add(set.get(), e);
                                 return parseElement(elem, e);
                               });
                             default: return false;
                             }
                           });
  return ok ? std::move(set) : nullptr;
}

} // namespace

BatchText renderBatch(const nl::NftBatch& batch) {
  BatchText out;
  batch.forEachMessage([&](const nlmsghdr* nlh, const std::string& what) {
    switch (nlh->nlmsg_type & 0xff) {
    case NFT_MSG_NEWCHAIN: {
      nl::ChainPtr c(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(nlh, c.get()) < 0) return out.errors.push_back(what);
      ChainFacts facts{.name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME),
                       .hasPolicy = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY),
                       .policy = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)
                                     ? nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY)
                                     : 0};
      out.chains.push_back(facts);
      // As nft 1.0.6 prints its chains: without the names and policy it sends. (A copy:
      // libnftnl 1.2.4's nftnl_chain_unset frees a string its snprintf still reads.)
      nl::ChainPtr shown(nftnl_chain_alloc());
      nftnl_chain_set_u32(shown.get(), NFTNL_CHAIN_FAMILY, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_FAMILY));
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
        nftnl_chain_set_u32(shown.get(), NFTNL_CHAIN_HOOKNUM, nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM));
        nftnl_chain_set_s32(shown.get(), NFTNL_CHAIN_PRIO, nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO));
        nftnl_chain_set_str(shown.get(), NFTNL_CHAIN_TYPE, nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE));
      }
      out.blocks.push_back({NetlinkBlock::Kind::kChain, tidy(printChain(shown.get()))});
      return;
    }
    case NFT_MSG_NEWSET: {
      nl::SetPtr s(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(nlh, s.get()) < 0) return out.errors.push_back(what);
      out.blocks.push_back({NetlinkBlock::Kind::kSet, tidy(printSet(s.get()))});
      return;
    }
    case NFT_MSG_NEWSETELEM: {
      nl::SetPtr s = parseElements(nlh);
      if (!s) return out.errors.push_back(what);
      out.blocks.push_back({NetlinkBlock::Kind::kElements, tidy(printSet(s.get()))});
      return;
    }
    case NFT_MSG_NEWRULE: {
      nl::RulePtr r(nftnl_rule_alloc());
      if (nftnl_rule_nlmsg_parse(nlh, r.get()) < 0) return out.errors.push_back(what);
      out.blocks.push_back({NetlinkBlock::Kind::kRule, tidy(printRule(r.get()))});
      return;
    }
    default: return; // tables and flushes: nft prints nothing for them
    }
  });
  return out;
}

std::vector<NetlinkBlock> parseNftDebug(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(tidy(text));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<NetlinkBlock> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.empty()) continue;
    const std::string next = i + 1 < lines.size() ? lines[i + 1] : "";
    if (startsWith(next, "  [")) { // a rule: its header, then one line per expression
      NetlinkBlock b{NetlinkBlock::Kind::kRule, line + "\n"};
      while (i + 1 < lines.size() && startsWith(lines[i + 1], "  [")) b.text += lines[++i] + "\n";
      out.push_back(b);
    } else if (startsWith(next, "\telement")) {
      out.push_back({NetlinkBlock::Kind::kElements, line + "\n" + next + "\n"});
      ++i;
    } else if (line.find(" use ") != std::string::npos) {
      out.push_back({NetlinkBlock::Kind::kChain, line + "\n"});
    } else {
      out.push_back({NetlinkBlock::Kind::kSet, line + "\n"});
    }
  }
  return out;
}

std::string joinBlocks(const std::vector<NetlinkBlock>& blocks) {
  std::string out;
  for (const auto& b : blocks) out += b.text;
  return out;
}

} // namespace podsteer::test
