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
// A static set's own elements (ports or CIDRs), interval-encoded.
SetPtr encodeStaticElements(const plan::Table& t, const plan::Set& s);
// The elements of `elems` that belong to `setName`, as one set object for NEWSETELEM/DELSETELEM.
SetPtr encodeElements(const plan::Table& t, const std::string& setName, const std::vector<plan::HostElement>& elems);

// A rule's expressions in libnftnl's debug notation, one string per expression: the
// form CHECK compares desired rules and the kernel's rules in.
std::vector<std::string> ruleExpressions(const nftnl_rule* r);

} // namespace podsteer::nl
