// Inventories: the hosts file's groups, Ansible INI inventories (groups,
// children, ranges, the variables mpasswd reads, every bound), and
// selection with Ansible host patterns (--limit, limit=).
#include <gtest/gtest.h>

#include "temp_file.hpp"

#include <string>
#include <vector>

#include "controller_config.hpp"
#include "controller_limits.hpp"
#include "inventory.hpp"

namespace {

using namespace mpasswd;

Inventory ansible(const std::string& text, TargetDefaults d = TargetDefaults(4242)) {
    return parse_ansible_inventory(text, "inv", d);
}

Inventory hosts(const std::string& text) {
    return parse_hosts_inventory(text, "hosts", TargetDefaults(4242));
}

std::string ansible_error(const std::string& text, TargetDefaults d = TargetDefaults(4242)) {
    try {
        ansible(text, d);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

std::string hosts_error(const std::string& text) {
    try {
        hosts(text);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

// The selected targets' names, space-separated, or the error.
std::string pick(const Inventory& inv, const std::string& pattern) {
    try {
        std::string out;
        for (const std::size_t i : select_targets(inv, pattern)) {
            out += (out.empty() ? "" : " ") + inv.names[i];
        }
        return out;
    } catch (const ConfigError& e) {
        return e.what();
    }
}

std::string labels(const Inventory& inv) {
    std::string out;
    for (const auto& t : inv.targets) {
        out += (out.empty() ? "" : " ") + t.label();
    }
    return out;
}

TEST(HostsFile, OldLinesStillParseAndGroupsAreAdded) {
    const auto inv = hosts(
        "# old lines, no group\n"
        "web1\n"
        "[::1]:7\n"
        "[::2]\n"
        "2001:db8::9\n"
        "[web]\n"
        "web1   # again: the same target, now grouped\n"
        "web2:4000 tls\n"
        "[db]\n"
        "db1 ssh\n"
        "[prod:children]\n"
        "web\n"
        "db  # comment\n");
    EXPECT_EQ(labels(inv), "web1:4242 [::1]:7 [::2]:4242 [2001:db8::9]:4242 web2:4000 db1:22");
    EXPECT_EQ(inv.targets[4].via, Via::tls);
    EXPECT_EQ(inv.targets[0].origin, "hosts:2");
    EXPECT_EQ(inv.groups.size(), 3U);
    EXPECT_EQ(inv.groups.at("prod").children, (std::vector<std::string>{"web", "db"}));
    EXPECT_EQ(pick(inv, "web"), "web1 web2");
    EXPECT_EQ(pick(inv, "prod"), "web1 web2 db1");
    EXPECT_EQ(pick(inv, "ungrouped"), "::1 ::2 2001:db8::9");
    EXPECT_EQ(pick(inv, "all"), "web1 ::1 ::2 2001:db8::9 web2 db1");
    // A name with or without its port.
    EXPECT_EQ(pick(inv, "web2:4000,db1"), "web2 db1");
    EXPECT_EQ(pick(inv, "[::1]:7"), "::1");
    EXPECT_EQ(pick(inv, "2001:db8::9"), "2001:db8::9");
    // Its targets are the old list, in file order.
    EXPECT_EQ(parse_hosts("a\n[g]\nb\na\n", "h", TargetDefaults(4242)).size(), 2U);
}

TEST(HostsFile, BadGroupsNameFileAndLine) {
    EXPECT_EQ(hosts_error("[web]\na\na:4242\n"), "hosts:3: a:4242 is already listed on line 2");
    EXPECT_EQ(hosts_error("a\n[web]\na tls\n"),
              "hosts:3: a:4242 is already listed on line 1 with other options");
    EXPECT_EQ(hosts_error("[web:vars]\n"),
              "hosts:1: [web:vars]: a hosts file's groups take no variables (give options on "
              "each line)");
    EXPECT_EQ(hosts_error("[web:kids]\n"),
              "hosts:1: [web:kids]: a section is [GROUP], [GROUP:children]");
    EXPECT_EQ(hosts_error("[we b]\n"),
              "hosts:1: 'we b' is not a group name (letters, digits, '_', '-', '.', at most 255)");
    EXPECT_EQ(hosts_error("[a:children]\nb c\n"),
              "hosts:2: 'b c' is not a group name (letters, digits, '_', '-', '.')");
    EXPECT_EQ(hosts_error("[a:children]\nall\n"), "hosts:2: all cannot be a child group");
    EXPECT_EQ(hosts_error("[a:children]\na\n"), "hosts:2: group a cannot be its own child");
    EXPECT_EQ(hosts_error("[a:children]\nb\n[b:children]\nc\n[c:children]\na\n"),
              "hosts:6: [c:children] a makes a loop: a is already above c");
    EXPECT_EQ(hosts_error("[ungrouped:children]\na\n"),
              "hosts:1: [ungrouped:children]: ungrouped has no child groups");
    EXPECT_EQ(hosts_error("[g]\nweb 2\n"),
              "hosts:2: unknown option '2' (HOST[:PORT] then tcp, tls, ssh, insecure_plaintext, "
              "auth=plain or tls_fingerprint=SHA256)");
}

TEST(HostsFile, BoundsOnGroupsAndEntries) {
    std::string many;
    for (std::size_t i = 0; i <= limits::groups_max; ++i) {
        many += "[g" + std::to_string(i) + "]\n";
    }
    EXPECT_EQ(hosts_error(many), "hosts:" + std::to_string(limits::groups_max + 1) +
                                     ": more than " + std::to_string(limits::groups_max) +
                                     " groups");
    // One target in ever more groups: entries are counted, not targets.
    std::string entries = "a\n";
    for (std::size_t i = 0; i < 60; ++i) {
        entries += "[g" + std::to_string(i) + "]\n";
        for (std::size_t k = 0; k < 2000; ++k) {
            entries += "h" + std::to_string(k) + "\n";
        }
    }
    const std::string e = hosts_error(entries);
    EXPECT_NE(e.find(": more than 100000 entries (hosts in groups, child groups, variables)"),
              std::string::npos)
        << e;
}

TEST(Ansible, GroupsChildrenVarsAndPorts) {
    const auto inv = ansible(
        "# an Ansible inventory\n"
        "; another comment\n"
        "mail.example.org\n"
        "\n"
        "[web]\n"
        "web1.example.org ansible_host=192.0.2.10 mpasswd_port=4300\n"
        "web2.example.org:2222 ansible_user=deploy  # ssh's port, ignored for tcp\n"
        "\n"
        "[db]  # the databases\n"
        "db1 ansible_host='192.0.2.20' ansible_port=2200\n"
        "[db:vars]\n"
        "mpasswd_port = 4400\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
        "[prod:children]\n"
        "web\n"
        "db\n"
        "[prod:vars]\n"
        "mpasswd_port=4500\n"
        "[all:vars]\n"
        "mpasswd_port=4600\n");
    EXPECT_EQ(labels(inv),
              "mail.example.org:4600 192.0.2.10:4300 web2.example.org:4500 192.0.2.20:4400");
    EXPECT_EQ(inv.names, (std::vector<std::string>{"mail.example.org", "web1.example.org",
                                                   "web2.example.org", "db1"}));
    EXPECT_EQ(inv.targets[1].origin, "inv:6");
    // Through ssh: ansible_port, NAME:PORT, else 22.
    TargetDefaults ssh(4242);
    ssh.via = Via::ssh;
    const auto by_ssh = ansible("a\nb:2222\nc ansible_port=2200 mpasswd_port=1\n[g]\nd\n"
                                "[g:vars]\nansible_port=2022\n",
                                ssh);
    EXPECT_EQ(labels(by_ssh), "a:22 b:2222 c:2200 d:2022");
    EXPECT_EQ(by_ssh.targets[0].via, Via::ssh);
    // The deepest group's variable wins; at one depth the last by name.
    const auto deep = ansible("[a]\nh1\nh2\n[b]\nh2\n[top:children]\na\nb\n[top:vars]\n"
                              "mpasswd_port=1\n[a:vars]\nmpasswd_port=2\n[b:vars]\n"
                              "mpasswd_port=3\n[ungrouped:vars]\nmpasswd_port=9\n");
    EXPECT_EQ(labels(deep), "h1:2 h2:3");
    EXPECT_EQ(labels(ansible("u\n[ungrouped:vars]\nmpasswd_port=9\n")), "u:9");
}

TEST(Ansible, RangesExpand) {
    EXPECT_EQ(ansible("web[01:03].example.org\n").names,
              (std::vector<std::string>{"web01.example.org", "web02.example.org",
                                        "web03.example.org"}));
    EXPECT_EQ(ansible("db-[a:c]\n").names, (std::vector<std::string>{"db-a", "db-b", "db-c"}));
    EXPECT_EQ(ansible("n[0:20:10]\n").names, (std::vector<std::string>{"n0", "n10", "n20"}));
    EXPECT_EQ(ansible("n[:1]\n").names, (std::vector<std::string>{"n0", "n1"}));
    EXPECT_EQ(ansible("r[1:2]c[a:b]\n").names,
              (std::vector<std::string>{"r1ca", "r1cb", "r2ca", "r2cb"}));
    const auto inv = ansible("[web]\nweb[1:3]:2222 mpasswd_port=4300\n");
    EXPECT_EQ(labels(inv), "web1:4300 web2:4300 web3:4300");
    EXPECT_EQ(ansible("[v6]\n[2001:db8::1]:22\n2001:db8::2\n").names,
              (std::vector<std::string>{"2001:db8::1", "2001:db8::2"}));
    EXPECT_EQ(ansible(std::string("w[1:") + std::to_string(limits::targets_max) + "]\n")
                  .targets.size(),
              limits::targets_max);
}

TEST(Ansible, ARepeatedHostIsOneTargetInEachGroup) {
    const auto inv = ansible("[a]\nh ansible_host=192.0.2.1\n[b]\nh\n[c]\nh ansible_host=192.0.2.1\n");
    EXPECT_EQ(labels(inv), "192.0.2.1:4242");
    EXPECT_EQ(pick(inv, "b"), "h");
    EXPECT_EQ(ansible_error("[a]\nh ansible_host=192.0.2.1\n[b]\nh ansible_host=192.0.2.2\n"),
              "inv:4: h: ansible_host differs from line 2");
}

TEST(Ansible, BadInventoriesNameFileAndLine) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"all:\n  hosts:\n", "inv:1: this looks like a YAML inventory; only the INI format is read"},
        {"# c\n---\n", "inv:2: this looks like a YAML inventory; only the INI format is read"},
        {"web[1:3\n", "inv:1: 'web[1:3': '[' without ']'"},
        {"web1:3]\n", "inv:1: 'web1:3]': '3]' is not a port from 1 to 65535"},
        {"web1]\n", "inv:1: 'web1]': ']' without '['"},
        {"web[3:1]\n", "inv:1: host range '[3:1]' must not end before it begins"},
        {"web[c:a]\n", "inv:1: host range '[c:a]' must not end before it begins"},
        {"web[1]\n", "inv:1: host range '[1]' must be [BEGIN:END] or [BEGIN:END:STEP]"},
        {"web[1:2:3:4]\n", "inv:1: host range '[1:2:3:4]' must be [BEGIN:END] or [BEGIN:END:STEP]"},
        {"web[1:]\n", "inv:1: host range '[1:]' must be of numbers (at most 9 digits) or of single letters"},
        {"web[1:5:0]\n", "inv:1: host range '[1:5:0]': the step must be a number from 1 to 10000"},
        {"web[a:9]\n", "inv:1: host range '[a:9]' must be of numbers (at most 9 digits) or of single letters"},
        {"web[01:100]\n", "inv:1: host range '[01:100]': a zero-padded range begins and ends with the same number of digits"},
        {"web[0:10000]\n", "inv:1: host range '[0:10000]' stands for more than 10000 names"},
        {"web[0:99999999999]\n", "inv:1: host range '[0:99999999999]' must be of numbers (at most 9 digits) or of single letters"},
        {"a[0:200]b[0:200]\n", "inv:1: 'a49b151': the ranges stand for more than 10000 names"},
        {"web1 ansible_user\n", "inv:1: 'ansible_user' is not KEY=VALUE (after the host come its variables)"},
        {"web1 =x\n", "inv:1: '=x' is not KEY=VALUE (after the host come its variables)"},
        {"web1 'unclosed\n", "inv:1: a ' without its closing one"},
        {"web1 mpasswd_port=0\n", "inv:1: mpasswd_port: '0' is not a port from 1 to 65535"},
        {"web1 ansible_port=x\n", "inv:1: ansible_port: 'x' is not a port from 1 to 65535"},
        {"web1:99999\n", "inv:1: 'web1:99999': '99999' is not a port from 1 to 65535"},
        {"web1 mpasswd_prot=1\n", "inv:1: unknown variable 'mpasswd_prot' (mpasswd reads mpasswd_port, ansible_host and ansible_port)"},
        {"we$b\n", "inv:1: 'we$b' is not a host name (letters, digits, '_', '-', '.') or an IP address"},
        {"w ansible_host=a:5\n", "inv:1: w: ansible_host 'a:5' is neither a host name nor an IP address"},
        {"w ansible_host=a$b\n", "inv:1: w: 'a$b' is neither a host name nor an IP address"},
        {"[g:vars]\nnothing here\n", "inv:2: 'nothing here' is not KEY=VALUE"},
        {"[g:vars]\nansible_host=1.2.3.4\n", "inv:2: ansible_host in [g:vars] is not supported: give it on each host's line"},
        {"[g:vars]\nmpasswd_port=x\n", "inv:2: mpasswd_port: 'x' is not a port from 1 to 65535"},
        {"[g:hosts]\n", "inv:1: [g:hosts]: a section is [GROUP], [GROUP:children] or [GROUP:vars]"},
        {"[g:children]\nx y\n", "inv:2: 'x y' is not a group name (letters, digits, '_', '-', '.')"},
        {"[a:children]\nb\n[b:children]\na\n", "inv:4: [b:children] a makes a loop: a is already above b"},
        {"a ansible_host=192.0.2.1\nb ansible_host=192.0.2.1\n", "inv:2: b is 192.0.2.1:4242, as is a on line 1"},
        {"x\n" + std::string(5000, 'a') + "\n", "inv:2: line longer than 4096 characters"},
    };
    for (const auto& [text, want] : cases) {
        EXPECT_EQ(ansible_error(text), want) << text;
    }
}

TEST(Ansible, TargetsAreBounded) {
    std::string text;
    for (std::size_t i = 0; i <= limits::targets_max; ++i) {
        text += "h" + std::to_string(i) + "\n";
    }
    EXPECT_EQ(ansible_error(text), "inv:10001: more than 10000 targets");
    EXPECT_EQ(ansible_error("a[1:9000]\nb[1:2000]\n"), "inv:2: more than 10000 targets");
}

TEST(Selection, AnsibleOrderAndOperators) {
    const auto inv = ansible(
        "solo\n"
        "[web]\nweb[1:4]\n"
        "[db]\ndb1\ndb2\nweb4\n"
        "[eu]\nweb1\ndb1\n"
        "[us]\nweb2\ndb2\n"
        "[prod:children]\nweb\ndb\n");
    EXPECT_EQ(pick(inv, "web"), "web1 web2 web3 web4");
    EXPECT_EQ(pick(inv, "web:db"), "web1 web2 web3 web4 db1 db2");
    EXPECT_EQ(pick(inv, "web,db"), "web1 web2 web3 web4 db1 db2");
    EXPECT_EQ(pick(inv, "web:&eu"), "web1");
    EXPECT_EQ(pick(inv, "web:!eu"), "web2 web3 web4");
    EXPECT_EQ(pick(inv, "prod:!db:&us"), "web2");
    // Ansible's order: plain terms first, then '&', then '!', wherever written.
    EXPECT_EQ(pick(inv, "!eu,web"), "web2 web3 web4");
    EXPECT_EQ(pick(inv, "&eu:prod"), "web1 db1");
    // Only '!' or '&': from all.
    EXPECT_EQ(pick(inv, "!prod"), "solo");
    EXPECT_EQ(pick(inv, "&us"), "web2 db2");
    EXPECT_EQ(pick(inv, "all"), "solo web1 web2 web3 web4 db1 db2");
    EXPECT_EQ(pick(inv, "*"), "solo web1 web2 web3 web4 db1 db2");
    EXPECT_EQ(pick(inv, "ungrouped"), "solo");
    // Globs over groups and names; names; a name that is also in a group.
    EXPECT_EQ(pick(inv, "web[!24]"), "web1 web3");
    EXPECT_EQ(pick(inv, "db?"), "db1 db2");
    EXPECT_EQ(pick(inv, "p*"), "web1 web2 web3 web4 db1 db2");
    EXPECT_EQ(pick(inv, "solo,web4"), "solo web4");
    EXPECT_EQ(pick(inv, " web2 , db1 "), "web2 db1");
    EXPECT_EQ(pick(inv, "solo:4242"), "solo");  // ':' splits: the port is no term
}

TEST(Selection, ATermMatchingNothingIsAnError) {
    const auto inv = ansible("[web]\nweb1\nweb2\n[db]\ndb1\n");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"webz", "--limit webz: 'webz' matches no group or host"},
        {"web:dbz", "--limit web:dbz: 'dbz' matches no group or host"},
        {"web:!dbz", "--limit web:!dbz: 'dbz' matches no group or host"},
        {"web:&dbz", "--limit web:&dbz: 'dbz' matches no group or host"},
        {"web:&db", "--limit web:&db: selects no target"},
        {"web:!web", "--limit web:!web: selects no target"},
        {"", "--limit : no group or host named"},
        {" , ,", "--limit  , ,: no group or host named"},
        {"web:!!db", "--limit web:!!db: '!!db': one '!' or '&' and then a group or host"},
        {"web,!", "--limit web,!: '!': one '!' or '&' and then a group or host"},
        {"~web.*", "--limit ~web.*: regular expressions (~) are not supported; use a glob (*, ?, [...])"},
        {"web[0]", "--limit web[0]: subscripts (web[0]) are not supported"},
        {"web[1:2]", "--limit web[1:2]: subscripts (web[1:2]) are not supported"},
        {"web[-1]", "--limit web[-1]: subscripts (web[-1]) are not supported"},
        {"@retry", "--limit @retry: @FILE (a retry file) is not supported"},
        {"we\x1b[2Jb", "--limit we\\x1b[2Jb: not printable ASCII"},
        {std::string(5000, 'w'), "--limit " + std::string(256 - 3, 'w') + "...: longer than 4096 characters"},
    };
    for (const auto& [pattern, want] : cases) {
        EXPECT_EQ(pick(inv, pattern), want) << pattern;
    }
    std::string terms;
    for (int i = 0; i <= 256; ++i) {
        terms += "web,";
    }
    EXPECT_EQ(pick(inv, terms).substr(pick(inv, terms).find(": ")), ": more than 256 terms");
    try {
        select_targets(inv, "nope", "limit=");
        ADD_FAILURE();
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "limit=nope: 'nope' matches no group or host");
    }
}

TEST(Selection, ChooseTargetsFromTheConfiguration) {
    TempFile inventory("[web]\nweb1 ansible_host=127.0.0.1 mpasswd_port=4001\n"
                       "web2 ansible_host=127.0.0.1 mpasswd_port=4002\n[db]\ndb1 ansible_host=127.0.0.2\n",
                       0644);
    TempFile hosts_file("[web]\n127.0.0.3\n", 0644);
    TempFile conf("secret = s3cret\ninventory = " + inventory.path() + "\n");
    const auto config = load_controller_config(conf.path());
    EXPECT_EQ(config.inventory, inventory.path());
    const auto names = [](const std::vector<Target>& ts) {
        std::string out;
        for (const auto& t : ts) {
            out += (out.empty() ? "" : " ") + t.label();
        }
        return out;
    };
    EXPECT_EQ(names(choose_targets(config, {})), "127.0.0.1:4001 127.0.0.1:4002 127.0.0.2:4242");
    TargetChoice c;
    c.limit = "db";
    EXPECT_EQ(names(choose_targets(config, c)), "127.0.0.2:4242");
    c.limit = "web:!web2";
    EXPECT_EQ(names(choose_targets(config, c)), "127.0.0.1:4001");
    // --hosts wins over the configuration's inventory.
    c.hosts_file = hosts_file.path();
    c.limit = "web";
    EXPECT_EQ(names(choose_targets(config, c)), "127.0.0.3:4242");
    c.limit = "db";
    EXPECT_THROW(choose_targets(config, c), ConfigError);
    // -H with a limit is refused.
    TargetChoice h;
    h.hosts = {"127.0.0.9"};
    EXPECT_EQ(names(choose_targets(config, h)), "127.0.0.9:4242");
    h.limit = "all";
    EXPECT_THROW(choose_targets(config, h), ConfigError);
    // Both keys: an error.
    TempFile both("secret = s3cret\nhosts = /x\ninventory = /y\n");
    EXPECT_THROW(load_controller_config(both.path()), ConfigError);
}

}  // namespace
