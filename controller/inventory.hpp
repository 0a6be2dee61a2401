// Inventories: the hosts file with groups, an Ansible INI inventory, and
// the selection of targets from either with an Ansible host pattern
// (mpasswd --limit, pam_mctp limit=).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "target.hpp"

namespace mpasswd {

struct ControllerConfig;

struct InventoryGroup {
    int line = 0;                       // where it was first named
    std::vector<std::size_t> hosts;     // its own targets (indexes), in file order
    std::vector<std::string> children;  // its child groups, in file order
};

// Targets with their names and groups. The built-in groups `all` (every
// target) and `ungrouped` (the targets in no other group) are not in
// `groups`.
struct Inventory {
    std::vector<Target> targets;     // in file order
    std::vector<std::string> names;  // each target's name: the HOST of a hosts
                                     // file line, an Ansible inventory host name
    std::map<std::string, InventoryGroup, std::less<>> groups;
};

// The hosts file (mpasswd.conf(5)): a target per line as parse_hosts_line
// reads it; '#' starts a comment. A "[group]" line starts a group (the
// lines before the first are in no group), "[group:children]" lists child
// groups, one per line. A target may be in several groups (with the same
// options); it is listed once per group. Throws ConfigError "FILE:LINE:
// why" for a bad line, more than limits::targets_max targets, groups,
// entries or a loop of children.
Inventory parse_hosts_inventory(const std::string& text, const std::string& path,
                                const TargetDefaults& defaults);
Inventory load_hosts_inventory(const std::string& path, const TargetDefaults& defaults);

// An Ansible INI inventory (mpasswd.conf(5), INVENTORIES): groups,
// ":children", ":vars", host ranges ("web[01:50].example.org", "[a:f]",
// "[0:20:5]"), and of the variables ansible_host, ansible_port (the port
// of ssh targets) and mpasswd_port (of tcp and tls targets); others are
// ignored, except unknown mpasswd_* ones. Lines of at most
// limits::inventory_line_max octets. Throws ConfigError "FILE:LINE: why".
Inventory parse_ansible_inventory(const std::string& text, const std::string& path,
                                  const TargetDefaults& defaults);
Inventory load_ansible_inventory(const std::string& path, const TargetDefaults& defaults);

// The hosts file's targets, without names or groups.
std::vector<Target> parse_hosts(const std::string& text, const std::string& path,
                                const TargetDefaults& defaults);
std::vector<Target> load_hosts_file(const std::string& path, const TargetDefaults& defaults);

// The indexes of the targets an Ansible host pattern selects, in the
// inventory's order. Terms are separated by ',' (or ':' when there is no
// ','); each is a group, a target's name or HOST:PORT, or an fnmatch(3)
// glob over them, `all` or `*`; "&TERM" intersects, "!TERM" excludes.
// As in Ansible, the plain terms are joined first, then the '&' terms and
// the '!' terms applied. Throws ConfigError "WHAT PATTERN: why" when a
// term matches nothing or nothing is selected (where Ansible only warns),
// or for a pattern Ansible reads otherwise (~regex, @file, group[0]).
std::vector<std::size_t> select_targets(const Inventory& inventory, std::string_view pattern,
                                        std::string_view what = "--limit");

// Where the targets come from, as given on the command line or to
// pam_mctp; unset ones fall back to the configuration.
struct TargetChoice {
    std::vector<std::string> hosts;         // -H: these targets only
    std::optional<std::string> hosts_file;  // --hosts, hosts=
    std::optional<std::string> inventory;   // -i, --inventory
    std::optional<std::string> limit;       // -l, --limit, limit=
    std::string_view limit_name = "--limit";
};

// The targets: -H's, else an inventory's (-i, else --hosts, else the
// configuration's `inventory`, else its `hosts`), limited by the pattern.
// Throws ConfigError for a file, target or pattern error.
std::vector<Target> choose_targets(const ControllerConfig& config, const TargetChoice& choice);

}  // namespace mpasswd
