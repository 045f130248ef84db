#pragma once

#include <string>
#include <vector>

#include "nl/handles.h"
#include "plan/host.h"
#include "plan/ir.h"

namespace podsteer::nl {

// Plan -> libnftnl objects. The expressions are the ones `nft` itself generates for the
// same text, so `nft list` shows our rules exactly as `podsteer explain` prints them.
uint16_t familyNumber(const std::string& family);
TablePtr encodeTable(const plan::Table& t);
ChainPtr encodeChain(const plan::Table& t, const plan::Chain& c);
RulePtr encodeRule(const plan::Table& t, const plan::Chain& c, const plan::Rule& r);
SetPtr encodeSet(const plan::Table& t, const plan::Set& s);

// Set elements go to the kernel in messages of at most this many elements: one message
// per set would grow with the config (256 IPv6 peers are 512 interval elements, more
// than 16 KiB) and could pass the 64 KiB a netlink attribute (the element list's nest)
// can hold. Several NEWSETELEM messages of one batch are applied as one transaction.
inline constexpr size_t kMaxElementsPerMessage = 128;

// A static set's own elements (ports or CIDRs), interval-encoded, in pieces of at most
// kMaxElementsPerMessage elements (a range's start and end element stay together).
std::vector<SetPtr> encodeStaticElements(const plan::Table& t, const plan::Set& s);
// The elements of `elems` that belong to `setName`, as one set object for
// NEWSETELEM/DELSETELEM (callers pass at most kMaxElementsPerMessage of them).
SetPtr encodeElements(const plan::Table& t, const std::string& setName, const std::vector<plan::HostElement>& elems);

// The most bytes libnftnl can write as the payload (after the nlmsghdr and nfgenmsg) of
// the message for each object: NftBatch builds every message in a buffer sized from
// these and refuses one that came out larger. Each counts every attribute libnftnl may
// emit for the object, strings by their length, byte values at the kernel's maximum.
size_t tablePayloadBound(const nftnl_table* t);
size_t chainPayloadBound(const nftnl_chain* c);
size_t setPayloadBound(const nftnl_set* s);
size_t elementsPayloadBound(nftnl_set* s); // NEWSETELEM/DELSETELEM/GETSETELEM
size_t rulePayloadBound(const nftnl_rule* r);

// A rule's expressions in libnftnl's debug notation, one string per expression: the
// form CHECK compares desired rules and the kernel's rules in.
std::vector<std::string> ruleExpressions(const nftnl_rule* r);

} // namespace podsteer::nl
