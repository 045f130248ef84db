#include "nl/nft_table.h"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <map>
#include <set>

#include "nl/nft_encode.h"
#include "plan/align.h"
#include "plan/render.h"

namespace podsteer::nl {

namespace {

std::string tableLabel(const plan::Table& t) { return "table " + t.family + " " + t.name; }

struct ObservedChain {
  ChainPtr chain;
  std::vector<std::vector<std::string>> rules; // in handle order (the kernel lists in order)
};

} // namespace

namespace {
void batchTable(NftBatch& batch, const plan::Table& desired, bool replace) {
  const uint16_t fam = familyNumber(desired.family);
  TablePtr table = encodeTable(desired);
  const std::string label = tableLabel(desired);
  if (replace) {
    batch.add(NFT_MSG_NEWTABLE, fam, NLM_F_CREATE, tablePayloadBound(table.get()),
              [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "add " + label);
    batch.add(NFT_MSG_DELTABLE, fam, 0, tablePayloadBound(table.get()),
              [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "flush " + label);
  }
  batch.add(NFT_MSG_NEWTABLE, fam, NLM_F_CREATE | NLM_F_EXCL, tablePayloadBound(table.get()),
            [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "create " + label);
  for (const auto& s : desired.sets) {
    SetPtr set = encodeSet(desired, s);
    const std::string setLabel = desired.family + " " + desired.name + " " + s.name;
    batch.add(NFT_MSG_NEWSET, fam, NLM_F_CREATE | NLM_F_EXCL, setPayloadBound(set.get()),
              [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); }, "add set " + setLabel);
    if (s.ports.empty() && s.cidrs.empty()) continue;
    std::vector<SetPtr> pieces = encodeStaticElements(desired, s);
    for (size_t i = 0; i < pieces.size(); ++i) {
      nftnl_set* piece = pieces[i].get();
      std::string what = "add elements to set " + setLabel;
      if (pieces.size() > 1) what += " (part " + std::to_string(i + 1) + " of " + std::to_string(pieces.size()) + ")";
      batch.add(NFT_MSG_NEWSETELEM, fam, NLM_F_CREATE | NLM_F_EXCL, elementsPayloadBound(piece),
                [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, piece); }, what);
    }
  }
  for (const auto& c : desired.chains) {
    ChainPtr chain = encodeChain(desired, c);
    std::string what = "add chain " + desired.family + " " + desired.name + " " + c.name;
    if (c.base) what += " { " + plan::renderChainHeader(c) + " }";
    batch.add(NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE | NLM_F_EXCL, chainPayloadBound(chain.get()),
              [&](nlmsghdr* n) { nftnl_chain_nlmsg_build_payload(n, chain.get()); }, what);
  }
  for (const auto& c : desired.chains) {
    for (const auto& r : c.rules) {
      RulePtr rule = encodeRule(desired, c, r);
      batch.add(NFT_MSG_NEWRULE, fam, NLM_F_CREATE | NLM_F_APPEND, rulePayloadBound(rule.get()),
                [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, rule.get()); },
                "add rule " + desired.family + " " + desired.name + " " + c.name,
                {[](const void* r) { return plan::renderRule(*static_cast<const plan::Rule*>(r)); }, &r});
    }
  }
}
} // namespace

void batchReplaceTable(NftBatch& batch, const plan::Table& desired) { batchTable(batch, desired, true); }
void batchCreateTable(NftBatch& batch, const plan::Table& desired) { batchTable(batch, desired, false); }

void batchDeleteTable(NftBatch& batch, const std::string& family, const std::string& name) {
  plan::Table t;
  t.family = family;
  t.name = name;
  TablePtr table = encodeTable(t);
  // "add" first: deleting a table that is already gone must not abort the transaction.
  batch.add(NFT_MSG_NEWTABLE, familyNumber(family), NLM_F_CREATE, tablePayloadBound(table.get()),
            [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "add " + tableLabel(t));
  batch.add(NFT_MSG_DELTABLE, familyNumber(family), 0, tablePayloadBound(table.get()),
            [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "delete " + tableLabel(t));
}

Result<bool> tableExists(NftSocket& sock, const std::string& family, const std::string& name) {
  plan::Table t;
  t.family = family;
  t.name = name;
  TablePtr table = encodeTable(t);
  bool found = false;
  auto s = sock.get(
      NFT_MSG_GETTABLE, familyNumber(family), [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); },
      [](const nlmsghdr*) {}, found, "get " + tableLabel(t));
  if (!s) return s.error();
  return found;
}

namespace {

using ObservedTable = std::map<std::string, ObservedChain>;

// The kernel's chains and rules of the table (two dumps, filtered by table name).
Result<ObservedTable> readTable(NftSocket& sock, const plan::Table& desired) {
  ObservedTable observed;
  const uint16_t fam = familyNumber(desired.family);
  const std::string label = tableLabel(desired);
  auto s = sock.dump(
      NFT_MSG_GETCHAIN, fam,
      [&](nlmsghdr* n) {
        ChainPtr filter(nftnl_chain_alloc());
        nftnl_chain_set_str(filter.get(), NFTNL_CHAIN_TABLE, desired.name.c_str());
        nftnl_chain_nlmsg_build_payload(n, filter.get());
      },
      [&](const nlmsghdr* m) {
        ChainPtr c(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(m, c.get()) < 0) return;
        if (desired.name != nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) return;
        std::string name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
        observed[name].chain = std::move(c);
      },
      "list chains of " + label);
  if (!s) return s.error();
  s = sock.dump(
      NFT_MSG_GETRULE, fam,
      [&](nlmsghdr* n) {
        RulePtr filter(nftnl_rule_alloc());
        nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, desired.name.c_str());
        nftnl_rule_nlmsg_build_payload(n, filter.get());
      },
      [&](const nlmsghdr* m) {
        RulePtr r(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(m, r.get()) < 0) return;
        if (desired.name != nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) return;
        std::string chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
        observed[chain].rules.push_back(ruleExpressions(r.get()));
      },
      "list rules of " + label);
  if (!s) return s.error();
  return observed;
}

bool sameBase(const plan::Table& desired, const plan::Chain& c, const nftnl_chain* kc) {
  if (!nftnl_chain_is_set(kc, NFTNL_CHAIN_HOOKNUM)) return false;
  ChainPtr want = encodeChain(desired, c);
  return nftnl_chain_get_u32(kc, NFTNL_CHAIN_HOOKNUM) == nftnl_chain_get_u32(want.get(), NFTNL_CHAIN_HOOKNUM) &&
         nftnl_chain_get_s32(kc, NFTNL_CHAIN_PRIO) == c.base->priority &&
         std::string(nftnl_chain_get_str(kc, NFTNL_CHAIN_TYPE)) == plan::chainTypeName(c.base->type) &&
         nftnl_chain_get_u32(kc, NFTNL_CHAIN_POLICY) == (c.base->policyAccept ? NF_ACCEPT : NF_DROP);
}

// One chain against the kernel's: its hook, type, priority and policy, then its rules,
// aligned so one missing or extra rule is reported as exactly that.
void diffChain(const plan::Table& desired, const plan::Chain& c, const ObservedChain& oc, const std::string& chainLabel,
               std::vector<std::string>& diffs) {
  if (c.base && !sameBase(desired, c, oc.chain.get()))
    diffs.push_back(chainLabel + ": hook, type, priority or policy differs (want " + plan::renderChainHeader(c) + ")");
  std::vector<std::vector<std::string>> want;
  for (const auto& r : c.rules) want.push_back(ruleExpressions(encodeRule(desired, c, r).get()));
  for (const auto& d : plan::alignSequences(want, oc.rules)) {
    if (d.missing)
      diffs.push_back(chainLabel + ": rule " + std::to_string(d.index + 1) + " `" + plan::renderRule(c.rules[d.index]) +
                      "` missing");
    else
      diffs.push_back(chainLabel + ": unexpected rule at position " + std::to_string(d.index + 1) + " (" +
                      (oc.rules[d.index].empty() ? "empty" : oc.rules[d.index].front()) + " ...)");
  }
}

Status diffSets(NftSocket& sock, const plan::Table& desired, const std::string& label, std::vector<std::string>& diffs) {
  if (desired.sets.empty()) return Status::success();
  auto sets = listSets(sock, desired.family, desired.name);
  if (!sets) return sets.error();
  for (const auto& s : desired.sets)
    if (std::find(sets->begin(), sets->end(), s.name) == sets->end()) diffs.push_back(label + ": set " + s.name + " missing");
  return Status::success();
}

} // namespace

Result<std::vector<std::string>> diffTable(NftSocket& sock, const plan::Table& desired) {
  const std::string label = tableLabel(desired);
  auto exists = tableExists(sock, desired.family, desired.name);
  if (!exists) return exists.error();
  if (!*exists) return std::vector<std::string>{label + ": missing"};
  auto observed = readTable(sock, desired);
  if (!observed) return observed.error();
  std::vector<std::string> diffs;
  for (const auto& c : desired.chains) {
    const std::string chainLabel = label + " chain " + c.name;
    auto it = observed->find(c.name);
    if (it == observed->end() || !it->second.chain) {
      diffs.push_back(chainLabel + ": missing");
      continue;
    }
    diffChain(desired, c, it->second, chainLabel, diffs);
    observed->erase(it);
  }
  for (const auto& [name, oc] : *observed)
    if (oc.chain) diffs.push_back(label + ": unexpected chain " + name);
  if (auto s = diffSets(sock, desired, label, diffs); !s) return s.error();
  return diffs;
}

} // namespace podsteer::nl

namespace podsteer::nl {

namespace {

std::set<std::string> setNamesOf(const std::vector<plan::HostElement>& elems) {
  std::set<std::string> names;
  for (const auto& e : elems) names.insert(e.set);
  return names;
}

void batchElements(NftBatch& batch, uint16_t type, uint16_t flags, const plan::Table& table,
                   const std::vector<plan::HostElement>& elems, const std::string& verb) {
  for (const auto& name : setNamesOf(elems)) {
    std::vector<plan::HostElement> ofSet;
    for (const auto& e : elems)
      if (e.set == name) ofSet.push_back(e);
    for (size_t from = 0; from < ofSet.size(); from += kMaxElementsPerMessage) {
      const std::vector<plan::HostElement> piece(
          ofSet.begin() + static_cast<ptrdiff_t>(from),
          ofSet.begin() + static_cast<ptrdiff_t>(std::min(ofSet.size(), from + kMaxElementsPerMessage)));
      SetPtr set = encodeElements(table, name, piece);
      std::string keys;
      for (const auto& e : piece) keys += (keys.empty() ? "" : ", ") + e.keyText();
      batch.add(type, familyNumber(table.family), flags, elementsPayloadBound(set.get()),
                [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, set.get()); },
                verb + " element " + table.family + " " + table.name + " " + name + " { " + keys + " }");
    }
  }
}

} // namespace

void batchEnsureBase(NftBatch& batch, const plan::Table& base, bool tableAbsent) {
  const uint16_t fam = familyNumber(base.family);
  TablePtr table = encodeTable(base);
  batch.add(NFT_MSG_NEWTABLE, fam, NLM_F_CREATE, tablePayloadBound(table.get()),
            [&](nlmsghdr* n) { nftnl_table_nlmsg_build_payload(n, table.get()); }, "add " + tableLabel(base));
  for (const auto& s : base.sets) {
    SetPtr set = encodeSet(base, s);
    batch.add(NFT_MSG_NEWSET, fam, NLM_F_CREATE, setPayloadBound(set.get()),
              [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); },
              "add set " + base.family + " " + base.name + " " + s.name + " { type " + plan::setKeyType(s.key) + " }");
  }
  for (const auto& c : base.chains) {
    ChainPtr chain = encodeChain(base, c);
    std::string label = base.family + " " + base.name + " " + c.name;
    batch.add(NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE, chainPayloadBound(chain.get()),
              [&](nlmsghdr* n) { nftnl_chain_nlmsg_build_payload(n, chain.get()); }, "add chain " + label);
    if (tableAbsent) continue;
    RulePtr flush(nftnl_rule_alloc());
    nftnl_rule_set_u32(flush.get(), NFTNL_RULE_FAMILY, fam);
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_TABLE, base.name.c_str());
    nftnl_rule_set_str(flush.get(), NFTNL_RULE_CHAIN, c.name.c_str());
    batch.add(NFT_MSG_DELRULE, fam, 0, rulePayloadBound(flush.get()),
              [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, flush.get()); }, "flush chain " + label);
  }
  for (const auto& c : base.chains) {
    for (const auto& r : c.rules) {
      RulePtr rule = encodeRule(base, c, r);
      batch.add(NFT_MSG_NEWRULE, fam, NLM_F_CREATE | NLM_F_APPEND, rulePayloadBound(rule.get()),
                [&](nlmsghdr* n) { nftnl_rule_nlmsg_build_payload(n, rule.get()); },
                "add rule " + base.family + " " + base.name + " " + c.name + " " + plan::renderRule(r));
    }
  }
}

void batchAddElements(NftBatch& batch, const plan::Table& table, const std::vector<plan::HostElement>& elems) {
  batchElements(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, elems, "add");
}

void batchDeleteElements(NftBatch& batch, const plan::Table& table, const std::vector<plan::HostElement>& elems) {
  batchElements(batch, NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, elems, "add");
  batchElements(batch, NFT_MSG_DELSETELEM, 0, table, elems, "delete");
}

void batchDeleteSet(NftBatch& batch, const plan::Table& table, const std::string& name) {
  SetPtr set(nftnl_set_alloc());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, familyNumber(table.family));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.name.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
  batch.add(NFT_MSG_DELSET, familyNumber(table.family), 0, setPayloadBound(set.get()),
            [&](nlmsghdr* n) { nftnl_set_nlmsg_build_payload(n, set.get()); },
            "delete set " + table.family + " " + table.name + " " + name);
}

Result<std::vector<std::string>> listSets(NftSocket& sock, const std::string& family, const std::string& table) {
  std::vector<std::string> names;
  auto s = sock.dump(
      NFT_MSG_GETSET, familyNumber(family),
      [&](nlmsghdr* n) {
        SetPtr filter(nftnl_set_alloc());
        nftnl_set_set_str(filter.get(), NFTNL_SET_TABLE, table.c_str());
        nftnl_set_nlmsg_build_payload(n, filter.get());
      },
      [&](const nlmsghdr* m) {
        SetPtr set(nftnl_set_alloc());
        if (nftnl_set_nlmsg_parse(m, set.get()) < 0) return;
        if (table != nftnl_set_get_str(set.get(), NFTNL_SET_TABLE)) return;
        names.push_back(nftnl_set_get_str(set.get(), NFTNL_SET_NAME));
      },
      "list sets of table " + family + " " + table);
  if (!s) return s.error();
  return names;
}

Result<bool> elementExists(NftSocket& sock, const plan::Table& table, const plan::HostElement& elem) {
  SetPtr set = encodeElements(table, elem.set, {elem});
  bool found = false;
  auto s = sock.get(NFT_MSG_GETSETELEM, familyNumber(table.family),
                    [&](nlmsghdr* n) { nftnl_set_elems_nlmsg_build_payload(n, set.get()); }, [](const nlmsghdr*) {},
                    found, "get element " + elem.set + " { " + elem.keyText() + " }");
  if (!s) return s.error();
  return found;
}

} // namespace podsteer::nl
