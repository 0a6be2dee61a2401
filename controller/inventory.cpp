#include "inventory.hpp"

#include <arpa/inet.h>
#include <fnmatch.h>

#include <algorithm>
#include <functional>
#include <set>
#include <tuple>
#include <utility>

#include "config_file.hpp"
#include "config_keys.hpp"
#include "controller_config.hpp"
#include "controller_limits.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

using mctp::cfg::ConfigError;

enum class Format { hosts, ansible };
enum class Section { hosts, children, vars };

constexpr std::string_view blanks = " \t\r";
constexpr std::string_view letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

std::string_view trim(std::string_view s) {
    const auto b = s.find_first_not_of(blanks);
    if (b == std::string_view::npos) {
        return {};
    }
    return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

bool is_ipv6(std::string_view s) {
    if (s.size() > 64 || s.find('\0') != std::string_view::npos) {
        return false;
    }
    in6_addr a{};
    return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

bool is_word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

bool is_word(std::string_view s, std::size_t max) {
    return !s.empty() && s.size() <= max && std::all_of(s.begin(), s.end(), is_word_char);
}

bool is_group_name(std::string_view s) {
    return is_word(s, limits::group_name_max);
}

bool is_builtin(std::string_view group) {
    return group == "all" || group == "ungrouped";
}

bool parse_port(std::string_view s, std::uint16_t* port) {
    return mctp::cfg::parse_uint(s, std::uint16_t{1}, std::uint16_t{65535}, port);
}

std::string quoted(std::string_view s) {
    return "'" + mctp::printable(s, 128) + "'";
}

// A host line of an Ansible inventory in words, as Python's shlex reads
// it there: blanks separate, quotes group, '#' at a word's start begins
// a comment.
bool shell_words(std::string_view line, std::vector<std::string>* out, std::string* why) {
    std::size_t i = 0;
    while (true) {
        while (i < line.size() && blanks.find(line[i]) != std::string_view::npos) {
            ++i;
        }
        if (i == line.size() || line[i] == '#') {
            return true;
        }
        std::string word;
        while (i < line.size() && blanks.find(line[i]) == std::string_view::npos) {
            const char c = line[i++];
            if (c == '\'' || c == '"') {
                const auto close = line.find(c, i);
                if (close == std::string_view::npos) {
                    *why = std::string("a ") + c + " without its closing one";
                    return false;
                }
                word += line.substr(i, close - i);
                i = close + 1;
            } else if (c == '\\' && i < line.size()) {
                word += line[i++];
            } else {
                word += c;
            }
        }
        out->push_back(std::move(word));
    }
}

// A variable's value: quotes removed, and a comment after it.
std::string_view bare_value(std::string_view v) {
    if (const auto hash = v.find(" #"); hash != std::string_view::npos) {
        v = trim(v.substr(0, hash));
    }
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
        v = v.substr(1, v.size() - 2);
    }
    return v;
}

// Appends to out every name a host pattern stands for, Ansible's ranges
// expanded: "[01:10]" (zero-padded to the width of the first), "[a:f]",
// "[0:20:5]" (a step); several ranges multiply. Throws via fail.
template <class Fail>
void expand_ranges(const std::string& pattern, std::vector<std::string>* out, const Fail& fail) {
    const auto open = pattern.find('[');
    if (open == std::string::npos) {
        if (pattern.find(']') != std::string::npos) {
            fail(quoted(pattern) + ": ']' without '['");
        }
        if (out->size() >= limits::range_names_max) {
            fail(quoted(pattern) + ": the ranges stand for more than " +
                 std::to_string(limits::range_names_max) + " names");
        }
        out->push_back(pattern);
        return;
    }
    const auto close = pattern.find(']', open);
    if (close == std::string::npos) {
        fail(quoted(pattern) + ": '[' without ']'");
    }
    const std::string head = pattern.substr(0, open);
    const std::string tail = pattern.substr(close + 1);
    std::vector<std::string> parts;
    {
        std::string_view r = std::string_view(pattern).substr(open + 1, close - open - 1);
        std::size_t start = 0;
        for (;;) {
            const auto colon = r.find(':', start);
            parts.emplace_back(
                r.substr(start, colon == std::string_view::npos ? colon : colon - start));
            if (colon == std::string_view::npos) {
                break;
            }
            start = colon + 1;
        }
    }
    const std::string range_text = quoted(pattern.substr(open, close - open + 1));
    if (parts.size() != 2 && parts.size() != 3) {
        fail("host range " + range_text + " must be [BEGIN:END] or [BEGIN:END:STEP]");
    }
    std::string beg = parts[0].empty() ? "0" : parts[0];
    const std::string& end = parts[1];
    unsigned long long step = 1;
    if (parts.size() == 3 &&
        !mctp::cfg::parse_unsigned(parts[2], 1, limits::range_names_max, &step)) {
        fail("host range " + range_text + ": the step must be a number " +
             mctp::cfg::range_text(1, limits::range_names_max));
    }
    std::vector<std::string> items;
    const auto letter = [](const std::string& s) {
        return s.size() == 1 ? letters.find(s[0]) : std::string_view::npos;
    };
    if (letter(beg) != std::string_view::npos && letter(end) != std::string_view::npos) {
        const std::size_t b = letter(beg);
        const std::size_t e = letter(end);
        if (b > e) {
            fail("host range " + range_text + " must not end before it begins");
        }
        for (std::size_t i = b; i <= e; i += step) {
            items.emplace_back(1, letters[i]);
        }
    } else {
        unsigned long long b = 0;
        unsigned long long e = 0;
        constexpr unsigned long long number_max = 999'999'999;
        if (!mctp::cfg::parse_unsigned(beg, 0, number_max, &b) ||
            !mctp::cfg::parse_unsigned(end, 0, number_max, &e)) {
            fail("host range " + range_text +
                 " must be of numbers (at most 9 digits) or of single letters");
        }
        if (b > e) {
            fail("host range " + range_text + " must not end before it begins");
        }
        if ((e - b) / step + 1 > limits::range_names_max) {
            fail("host range " + range_text + " stands for more than " +
                 std::to_string(limits::range_names_max) + " names");
        }
        const bool padded = beg.size() > 1 && beg[0] == '0';
        if (padded && beg.size() != end.size()) {
            fail("host range " + range_text + ": a zero-padded range begins and ends with "
                 "the same number of digits");
        }
        for (unsigned long long i = b; i <= e; i += step) {
            std::string n = std::to_string(i);
            if (padded && n.size() < beg.size()) {
                n.insert(0, beg.size() - n.size(), '0');
            }
            items.push_back(std::move(n));
        }
    }
    for (const auto& item : items) {
        expand_ranges(head + item + tail, out, fail);
    }
}

class Parser {
public:
    Parser(std::string path, Format format, const TargetDefaults& defaults)
        : path_(std::move(path)), format_(format), defaults_(defaults) {}

    Inventory run(const std::string& text) {
        std::size_t start = 0;
        while (start < text.size()) {
            auto end = text.find('\n', start);
            if (end == std::string::npos) {
                end = text.size();
            }
            ++line_;
            on_line(std::string_view(text).substr(start, end - start));
            start = end + 1;
        }
        line_ = 0;
        check_loops();
        if (format_ == Format::ansible) {
            make_targets();
        }
        return std::move(inv_);
    }

private:
    // Ansible: a host as the inventory names it, before its port is known.
    struct Host {
        std::string name;
        int line = 0;
        std::optional<std::string> address;  // ansible_host
        int address_line = 0;
        std::optional<std::uint16_t> ssh_port;   // NAME:PORT or ansible_port
        std::optional<std::uint16_t> mctp_port;  // mpasswd_port
    };
    // Ansible: a group's (or all's, ungrouped's) port variables.
    struct Vars {
        std::optional<std::uint16_t> ssh_port;
        std::optional<std::uint16_t> mctp_port;
    };

    [[noreturn]] void fail(const std::string& why) const {
        throw ConfigError(mctp::printable(path_) + (line_ > 0 ? ":" + std::to_string(line_) : "") +
                          ": " + why);
    }

    void count_entry() {
        if (++entries_ > limits::inventory_entries_max) {
            fail("more than " + std::to_string(limits::inventory_entries_max) +
                 " entries (hosts in groups, child groups, variables)");
        }
    }

    InventoryGroup& group(const std::string& name) {
        auto it = inv_.groups.find(name);
        if (it == inv_.groups.end()) {
            if (inv_.groups.size() >= limits::groups_max) {
                fail("more than " + std::to_string(limits::groups_max) + " groups");
            }
            it = inv_.groups.emplace(name, InventoryGroup{line_, {}, {}}).first;
        }
        return it->second;
    }

    void on_line(std::string_view raw) {
        const std::size_t line_max =
            format_ == Format::ansible ? limits::inventory_line_max : limits::hosts_line_max;
        if (raw.size() > line_max) {
            fail("line longer than " + std::to_string(line_max) + " characters");
        }
        std::string_view line = raw;
        if (format_ == Format::hosts) {
            line = line.substr(0, line.find('#'));
        }
        line = trim(line);
        if (line.empty() || (format_ == Format::ansible && (line[0] == '#' || line[0] == ';'))) {
            return;
        }
        if (format_ == Format::ansible && !seen_line_ && (line == "---" || line.ends_with(':'))) {
            fail("this looks like a YAML inventory; only the INI format is read");
        }
        seen_line_ = true;
        if (line[0] == '[' && on_header(line)) {
            return;
        }
        switch (section_) {
        case Section::children: on_child(line); break;
        case Section::vars: on_variable(line); break;
        case Section::hosts:
            if (format_ == Format::hosts) {
                on_hosts_line(line);
            } else {
                on_ansible_host(line);
            }
            break;
        }
    }

    // "[web]", "[web:children]", "[web:vars]" (Ansible only); false for a
    // line that is a bracketed IPv6 target.
    bool on_header(std::string_view line) {
        if (format_ == Format::ansible) {
            // [group] # comment
            const auto close = line.find(']');
            if (close != std::string_view::npos && trim(line.substr(close + 1)).starts_with('#')) {
                line = line.substr(0, close + 1);
            }
        }
        if (!line.ends_with(']')) {
            return false;
        }
        const std::string_view inside = line.substr(1, line.size() - 2);
        if (is_ipv6(inside)) {
            return false;
        }
        const auto colon = inside.find(':');
        const std::string_view name = inside.substr(0, colon);
        const std::string_view kind =
            colon == std::string_view::npos ? std::string_view() : inside.substr(colon + 1);
        if (!is_group_name(name)) {
            fail(quoted(name) + " is not a group name (letters, digits, '_', '-', '.', at most " +
                 std::to_string(limits::group_name_max) + ")");
        }
        if (kind.empty() && colon == std::string_view::npos) {
            section_ = Section::hosts;
        } else if (kind == "children") {
            section_ = Section::children;
            if (name == "ungrouped") {
                fail("[ungrouped:children]: ungrouped has no child groups");
            }
        } else if (kind == "vars" && format_ == Format::ansible) {
            section_ = Section::vars;
        } else if (kind == "vars") {
            fail("[" + mctp::printable(inside, 300) +
                 "]: a hosts file's groups take no variables (give options on each line)");
        } else {
            fail("[" + mctp::printable(inside, 300) + "]: a section is [GROUP], [GROUP:children]" +
                 (format_ == Format::ansible ? " or [GROUP:vars]" : ""));
        }
        group_ = std::string(name);
        if (!is_builtin(group_)) {
            group(group_);
        }
        return true;
    }

    void on_child(std::string_view line) {
        if (format_ == Format::ansible) {
            line = trim(line.substr(0, line.find('#')));
        }
        if (!is_group_name(line)) {
            fail(quoted(line) + " is not a group name (letters, digits, '_', '-', '.')");
        }
        const std::string child(line);
        if (is_builtin(child)) {
            fail(child + " cannot be a child group");
        }
        count_entry();
        group(child);
        if (group_ == "all") {
            return;  // every group is under all already
        }
        if (child == group_) {
            fail("group " + child + " cannot be its own child");
        }
        auto& children = group(group_).children;
        if (std::find(children.begin(), children.end(), child) == children.end()) {
            children.push_back(child);
            child_line_.emplace(group_ + '\n' + child, line_);
        }
    }

    void on_variable(std::string_view line) {
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) {
            fail(quoted(line) + " is not KEY=VALUE");
        }
        count_entry();
        const std::string_view key = trim(line.substr(0, eq));
        const std::string_view value = bare_value(trim(line.substr(eq + 1)));
        if (key == "ansible_host" || key == "ansible_ssh_host") {
            fail(std::string(key) + " in [" + group_ +
                 ":vars] is not supported: give it on each host's line");
        }
        std::optional<std::uint16_t>* which = nullptr;
        set_port(key, value, &vars_[group_].ssh_port, &vars_[group_].mctp_port, &which);
    }

    // Sets *ssh or *mctp from an ansible_port or mpasswd_port variable;
    // false for a variable that is ignored. Fails for a bad port or an
    // unknown mpasswd_ variable.
    bool set_port(std::string_view key, std::string_view value,
                  std::optional<std::uint16_t>* ssh, std::optional<std::uint16_t>* mctp,
                  std::optional<std::uint16_t>** which) {
        if (key == "ansible_port" || key == "ansible_ssh_port") {
            *which = ssh;
        } else if (key == "mpasswd_port") {
            *which = mctp;
        } else if (key.starts_with("mpasswd_")) {
            fail("unknown variable " + quoted(key) +
                 " (mpasswd reads mpasswd_port, ansible_host and ansible_port)");
        } else {
            return false;  // another tool's variable
        }
        std::uint16_t port = 0;
        if (!parse_port(value, &port)) {
            fail(std::string(key) + ": " + quoted(value) + " is not a port from 1 to 65535");
        }
        **which = port;
        return true;
    }

    // A group's own target, or one before any group (in no group).
    void add_member(std::size_t index) {
        count_entry();
        if (!member_.insert({group_, index}).second) {
            return;
        }
        if (!is_builtin(group_)) {
            group(group_).hosts.push_back(index);
        }
    }

    void on_hosts_line(std::string_view line) {
        std::string why;
        auto target = parse_hosts_line(line, defaults_, &why);
        if (!target) {
            fail(why);
        }
        const auto [it, fresh] = by_label_.emplace(target->label(), inv_.targets.size());
        if (!fresh) {
            const Target& old = inv_.targets[it->second];
            const std::string first = std::to_string(lines_[it->second]);
            if (member_.count({group_, it->second}) != 0) {
                fail(target->label() + " is already listed on line " + first);
            }
            if (old.via != target->via || old.insecure_plaintext != target->insecure_plaintext ||
                old.auth_plain != target->auth_plain ||
                old.tls_fingerprint != target->tls_fingerprint) {
                fail(target->label() + " is already listed on line " + first +
                     " with other options");
            }
            add_member(it->second);
            return;
        }
        if (inv_.targets.size() >= limits::targets_max) {
            fail("more than " + std::to_string(limits::targets_max) + " targets");
        }
        target->origin = path_ + ":" + std::to_string(line_);
        inv_.names.push_back(target->host);
        inv_.targets.push_back(std::move(*target));
        lines_.push_back(line_);
        add_member(inv_.targets.size() - 1);
    }

    // Ansible: "NAME[:PORT] [KEY=VALUE...]", NAME with ranges; "[v6]:PORT"
    // or a bare IPv6 address.
    void on_ansible_host(std::string_view line) {
        std::vector<std::string> words;
        std::string why;
        if (!shell_words(line, &words, &why)) {
            fail(why);
        }
        if (words.empty()) {
            return;
        }
        const std::string& spec = words[0];
        std::string pattern = spec;
        std::optional<std::uint16_t> port;
        const auto take_port = [&](std::string_view text) {
            std::uint16_t p = 0;
            if (!parse_port(text, &p)) {
                fail(quoted(spec) + ": " + quoted(text) + " is not a port from 1 to 65535");
            }
            port = p;
        };
        if (spec.starts_with('[') && spec.find(']') != std::string::npos &&
            is_ipv6(std::string_view(spec).substr(1, spec.find(']') - 1))) {
            const auto close = spec.find(']');
            pattern = spec.substr(1, close - 1);
            const std::string_view rest = std::string_view(spec).substr(close + 1);
            if (!rest.empty()) {
                if (!rest.starts_with(':')) {
                    fail(quoted(spec) + ": after ']' comes ':PORT'");
                }
                take_port(rest.substr(1));
            }
        } else if (!is_ipv6(spec)) {
            // The last ':' outside a range separates the port.
            int depth = 0;
            std::size_t colon = std::string::npos;
            for (std::size_t i = 0; i < spec.size(); ++i) {
                depth += spec[i] == '[' ? 1 : spec[i] == ']' ? -1 : 0;
                if (spec[i] == ':' && depth == 0) {
                    colon = i;
                }
            }
            if (colon != std::string::npos) {
                pattern = spec.substr(0, colon);
                take_port(std::string_view(spec).substr(colon + 1));
            }
        }
        Host vars;
        vars.ssh_port = port;
        for (std::size_t i = 1; i < words.size(); ++i) {
            const auto eq = words[i].find('=');
            if (eq == std::string::npos || eq == 0) {
                fail(quoted(words[i]) + " is not KEY=VALUE (after the host come its variables)");
            }
            count_entry();
            const std::string_view key = std::string_view(words[i]).substr(0, eq);
            const std::string_view value = std::string_view(words[i]).substr(eq + 1);
            if (key == "ansible_host" || key == "ansible_ssh_host") {
                vars.address = std::string(value);
                continue;
            }
            std::optional<std::uint16_t>* which = nullptr;
            set_port(key, value, &vars.ssh_port, &vars.mctp_port, &which);
        }
        std::vector<std::string> names;
        if (is_ipv6(pattern)) {
            names.push_back(pattern);
        } else {
            expand_ranges(pattern, &names, [this](const std::string& w) { fail(w); });
        }
        for (const auto& name : names) {
            if (!is_ipv6(name) && !is_word(name, 255)) {
                fail(quoted(name) + " is not a host name (letters, digits, '_', '-', '.') or an "
                                    "IP address");
            }
            add_ansible_host(name, vars);
        }
    }

    void add_ansible_host(const std::string& name, const Host& vars) {
        auto [it, fresh] = by_name_.emplace(name, hosts_.size());
        if (fresh) {
            if (hosts_.size() >= limits::targets_max) {
                fail("more than " + std::to_string(limits::targets_max) + " targets");
            }
            Host h = vars;
            h.name = name;
            h.line = line_;
            h.address_line = line_;
            hosts_.push_back(std::move(h));
        } else {
            Host& h = hosts_[it->second];
            const auto merge = [&](auto& have, const auto& given, const char* what) {
                if (given && have && *have != *given) {
                    fail(name + ": " + what + " differs from line " + std::to_string(h.line));
                }
                if (given) {
                    have = given;
                }
            };
            merge(h.address, vars.address, "ansible_host");
            merge(h.ssh_port, vars.ssh_port, "ansible_port");
            merge(h.mctp_port, vars.mctp_port, "mpasswd_port");
            if (vars.address) {
                h.address_line = line_;
            }
        }
        add_member(it->second);
    }

    // Children in a loop (a child that is also above its parent).
    void check_loops() {
        std::map<std::string, int, std::less<>> state;  // 1 on the path, 2 done
        std::vector<std::pair<const std::string*, std::size_t>> stack;
        for (const auto& [name, g] : inv_.groups) {
            if (state[name] != 0) {
                continue;
            }
            stack.emplace_back(&name, 0);
            state[name] = 1;
            while (!stack.empty()) {
                auto& [current, next] = stack.back();
                const auto& children = inv_.groups.find(*current)->second.children;
                if (next == children.size()) {
                    state[*current] = 2;
                    stack.pop_back();
                    continue;
                }
                const std::string& child = children[next++];
                const int s = state[child];
                if (s == 1) {
                    line_ = child_line_.at(*current + '\n' + child);
                    fail("[" + *current + ":children] " + child + " makes a loop: " + child +
                         " is already above " + *current);
                }
                if (s == 0) {
                    state[child] = 1;
                    stack.emplace_back(&inv_.groups.find(child)->first, 0);
                }
            }
        }
    }

    // Ansible: each group's depth (1 under all, one more under each
    // parent), and the port variable that applies through it: its own or
    // an ancestor's, the deepest winning and, at one depth, the group
    // last in name order (as Ansible sorts groups).
    struct Best {
        int depth = -1;
        std::string group;
        std::uint16_t port = 0;
    };
    static bool better(const Best& a, const Best& b) {
        return std::tie(a.depth, a.group) > std::tie(b.depth, b.group);
    }

    void make_targets() {
        std::map<std::string, std::vector<std::string>> parents;
        for (const auto& [name, g] : inv_.groups) {
            for (const auto& c : g.children) {
                parents[c].push_back(name);
            }
        }
        std::map<std::string, int> depth;
        std::map<std::string, std::pair<Best, Best>> best;  // ssh, mctp
        const std::function<void(const std::string&)> visit = [&](const std::string& g) {
            if (depth.count(g) != 0) {
                return;
            }
            int d = 1;
            Best ssh;
            Best mctp;
            for (const auto& p : parents[g]) {
                visit(p);
                d = std::max(d, depth[p] + 1);
                const auto& [ps, pm] = best[p];
                ssh = better(ps, ssh) ? ps : ssh;
                mctp = better(pm, mctp) ? pm : mctp;
            }
            depth[g] = d;
            if (const auto v = vars_.find(g); v != vars_.end()) {
                if (v->second.ssh_port) {
                    ssh = Best{d, g, *v->second.ssh_port};
                }
                if (v->second.mctp_port) {
                    mctp = Best{d, g, *v->second.mctp_port};
                }
            }
            best[g] = {ssh, mctp};
        };
        for (const auto& [name, g] : inv_.groups) {
            visit(name);
        }
        std::vector<std::pair<Best, Best>> of_host(hosts_.size());
        std::vector<bool> grouped(hosts_.size(), false);
        const auto take = [](std::pair<Best, Best>& into, const std::pair<Best, Best>& from) {
            into.first = better(from.first, into.first) ? from.first : into.first;
            into.second = better(from.second, into.second) ? from.second : into.second;
        };
        for (const auto& [name, g] : inv_.groups) {
            for (const std::size_t i : g.hosts) {
                take(of_host[i], best[name]);
                grouped[i] = true;
            }
        }
        const auto group_vars = [&](const std::string& g, int d) {
            std::pair<Best, Best> b;
            if (const auto v = vars_.find(g); v != vars_.end()) {
                if (v->second.ssh_port) {
                    b.first = Best{d, g, *v->second.ssh_port};
                }
                if (v->second.mctp_port) {
                    b.second = Best{d, g, *v->second.mctp_port};
                }
            }
            return b;
        };
        const auto all = group_vars("all", 0);
        const auto ungrouped = group_vars("ungrouped", 1);
        std::map<std::string, std::size_t> labels;
        for (std::size_t i = 0; i < hosts_.size(); ++i) {
            const Host& h = hosts_[i];
            auto b = of_host[i];
            take(b, all);
            if (!grouped[i]) {
                take(b, ungrouped);
            }
            const bool ssh = defaults_.via == Via::ssh;
            const std::uint16_t port =
                ssh ? h.ssh_port.value_or(b.first.depth >= 0 ? b.first.port : defaults_.ssh_port)
                    : h.mctp_port.value_or(b.second.depth >= 0 ? b.second.port : defaults_.port);
            const std::string& address = h.address.value_or(h.name);
            line_ = h.address ? h.address_line : h.line;
            const std::string what =
                h.address ? "ansible_host " + quoted(address) : quoted(address);
            if (address.find(':') != std::string::npos && !is_ipv6(address)) {
                fail(h.name + ": " + what + " is neither a host name nor an IP address");
            }
            std::string why;
            auto t = parse_target(address, port, &why);
            if (!t) {
                fail(h.name + ": " + why);
            }
            t->via = defaults_.via;
            t->insecure_plaintext = defaults_.insecure_plaintext;
            t->origin = path_ + ":" + std::to_string(h.line);
            const auto [it, fresh] = labels.emplace(t->label(), i);
            if (!fresh) {
                line_ = h.line;
                fail(h.name + " is " + t->label() + ", as is " + hosts_[it->second].name +
                     " on line " + std::to_string(hosts_[it->second].line));
            }
            inv_.targets.push_back(std::move(*t));
            inv_.names.push_back(h.name);
        }
        line_ = 0;
    }

    std::string path_;
    Format format_;
    const TargetDefaults& defaults_;
    Inventory inv_;
    int line_ = 0;
    Section section_ = Section::hosts;
    std::string group_ = "ungrouped";  // the section's group
    std::size_t entries_ = 0;
    bool seen_line_ = false;
    std::set<std::pair<std::string, std::size_t>> member_;  // (group, target)
    std::map<std::string, int> child_line_;                 // "parent\nchild" -> line
    // The hosts file: each target's label and first line.
    std::map<std::string, std::size_t> by_label_;
    std::vector<int> lines_;
    // Ansible.
    std::vector<Host> hosts_;
    std::map<std::string, std::size_t> by_name_;
    std::map<std::string, Vars> vars_;
};

// ---- Selection.

bool has_glob(std::string_view s) {
    return s.find_first_of("*?[") != std::string_view::npos;
}

// Ansible's "group[0]", "group[1:3]", "group[-1]", "group[2-]": a subscript.
bool is_subscript(std::string_view s) {
    if (!s.ends_with(']')) {
        return false;
    }
    const auto open = s.rfind('[');
    if (open == std::string_view::npos || open == 0) {
        return false;
    }
    std::string_view in = s.substr(open + 1, s.size() - open - 2);
    const auto digits = [](std::string_view d) {
        return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (in.starts_with('-') && in.size() > 1 && digits(in.substr(1))) {
        return true;
    }
    if (!in.empty() && digits(in)) {
        return true;
    }
    const auto sep = in.find_first_of(":-");
    return sep != std::string_view::npos && digits(in.substr(0, sep)) &&
           digits(in.substr(sep + 1));
}

// Ansible's split: at ',' when there is one; else the whole pattern when
// it is an address ("host:port", "[v6]:port", a bare IPv6 address); else
// at each ':' outside brackets.
std::vector<std::string_view> split_terms(std::string_view pattern) {
    std::vector<std::string_view> out;
    const auto add = [&](std::string_view term) {
        if (term = trim(term); !term.empty()) {
            out.push_back(term);
        }
    };
    std::string why;
    if (pattern.find(',') == std::string_view::npos &&
        parse_target(trim(pattern), 1, &why).has_value()) {
        add(pattern);
        return out;
    }
    const char sep = pattern.find(',') != std::string_view::npos ? ',' : ':';
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        depth += pattern[i] == '[' ? 1 : pattern[i] == ']' && depth > 0 ? -1 : 0;
        if (pattern[i] == sep && (sep == ',' || depth == 0)) {
            add(pattern.substr(start, i - start));
            start = i + 1;
        }
    }
    add(pattern.substr(start));
    return out;
}

class Selector {
public:
    Selector(const Inventory& inv, std::string_view pattern, std::string_view what)
        : inv_(inv), pattern_(pattern), what_(what), grouped_(inv.targets.size(), 0) {
        for (const auto& [name, g] : inv.groups) {
            for (const std::size_t i : g.hosts) {
                grouped_[i] = 1;
            }
        }
    }

    [[noreturn]] void fail(const std::string& why) const {
        throw ConfigError(std::string(what_) + (what_.ends_with('=') ? "" : " ") +
                          mctp::printable(pattern_, 256) + ": " + why);
    }

    std::vector<char> match(std::string_view term) const {
        if (term.starts_with('~')) {
            fail("regular expressions (~) are not supported; use a glob (*, ?, [...])");
        }
        if (is_subscript(term)) {
            fail("subscripts (" + mctp::printable(term, 128) + ") are not supported");
        }
        const std::string t(term);
        std::vector<char> hit(inv_.targets.size(), 0);
        bool group_matched = false;
        const auto matches = [&](const std::string& name) {
            return name == t || fnmatch(t.c_str(), name.c_str(), 0) == 0;
        };
        if (matches("all")) {
            group_matched = true;
            std::fill(hit.begin(), hit.end(), 1);
        }
        if (matches("ungrouped")) {
            group_matched = true;
            for (std::size_t i = 0; i < hit.size(); ++i) {
                hit[i] = static_cast<char>(hit[i] | !grouped_[i]);
            }
        }
        for (const auto& [name, g] : inv_.groups) {
            if (matches(name)) {
                group_matched = true;
                add_group(name, &hit);
            }
        }
        // Ansible: names of hosts too, unless a group matched a plain word.
        if (!group_matched || has_glob(term) || term.find('.') != std::string_view::npos) {
            for (std::size_t i = 0; i < hit.size(); ++i) {
                if (!hit[i] && (matches(inv_.names[i]) || matches(inv_.targets[i].label()))) {
                    hit[i] = 1;
                }
            }
        }
        return hit;
    }

private:
    void add_group(const std::string& name, std::vector<char>* hit) const {
        std::set<std::string_view> seen{name};
        std::vector<const std::string*> todo{&name};
        while (!todo.empty()) {
            const auto& g = inv_.groups.find(*todo.back())->second;
            todo.pop_back();
            for (const std::size_t i : g.hosts) {
                (*hit)[i] = 1;
            }
            for (const auto& c : g.children) {
                if (seen.insert(c).second) {
                    todo.push_back(&c);
                }
            }
        }
    }

    const Inventory& inv_;
    std::string_view pattern_;
    std::string_view what_;
    std::vector<char> grouped_;
};

}  // namespace

Inventory parse_hosts_inventory(const std::string& text, const std::string& path,
                                const TargetDefaults& defaults) {
    return Parser(path, Format::hosts, defaults).run(text);
}

Inventory parse_ansible_inventory(const std::string& text, const std::string& path,
                                  const TargetDefaults& defaults) {
    return Parser(path, Format::ansible, defaults).run(text);
}

// Neither file holds a secret mpasswd reads; they may be readable by all.
Inventory load_hosts_inventory(const std::string& path, const TargetDefaults& defaults) {
    return parse_hosts_inventory(mctp::cfg::read_checked(path, "", true), path, defaults);
}

Inventory load_ansible_inventory(const std::string& path, const TargetDefaults& defaults) {
    return parse_ansible_inventory(mctp::cfg::read_checked(path, "", true), path, defaults);
}

std::vector<Target> parse_hosts(const std::string& text, const std::string& path,
                                const TargetDefaults& defaults) {
    return parse_hosts_inventory(text, path, defaults).targets;
}

std::vector<Target> load_hosts_file(const std::string& path, const TargetDefaults& defaults) {
    return load_hosts_inventory(path, defaults).targets;
}

std::vector<std::size_t> select_targets(const Inventory& inventory, std::string_view pattern,
                                        std::string_view what) {
    Selector s(inventory, pattern, what);
    if (pattern.size() > limits::limit_max) {
        s.fail("longer than " + std::to_string(limits::limit_max) + " characters");
    }
    if (!mctp::is_printable_ascii(pattern)) {
        s.fail("not printable ASCII");
    }
    if (trim(pattern).starts_with('@')) {
        s.fail("@FILE (a retry file) is not supported");
    }
    const auto terms = split_terms(pattern);
    if (terms.empty()) {
        s.fail("no group or host named");
    }
    if (terms.size() > limits::limit_terms_max) {
        s.fail("more than " + std::to_string(limits::limit_terms_max) + " terms");
    }
    std::vector<std::string_view> plain;
    std::vector<std::string_view> both;
    std::vector<std::string_view> without;
    for (const auto term : terms) {
        if (term.starts_with('&') || term.starts_with('!')) {
            const auto rest = trim(term.substr(1));
            if (rest.empty() || rest.starts_with('&') || rest.starts_with('!')) {
                s.fail(quoted(term) + ": one '!' or '&' and then a group or host");
            }
            (term[0] == '&' ? both : without).push_back(rest);
        } else {
            plain.push_back(term);
        }
    }
    if (plain.empty()) {
        plain.push_back("all");
    }
    std::vector<char> chosen(inventory.targets.size(), 0);
    const auto hits = [&](std::string_view term) {
        auto hit = s.match(term);
        if (std::find(hit.begin(), hit.end(), 1) == hit.end()) {
            s.fail(quoted(term) + " matches no group or host");
        }
        return hit;
    };
    for (const auto term : plain) {
        const auto hit = hits(term);
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            chosen[i] = static_cast<char>(chosen[i] | hit[i]);
        }
    }
    for (const auto term : both) {
        const auto hit = hits(term);
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            chosen[i] = static_cast<char>(chosen[i] & hit[i]);
        }
    }
    for (const auto term : without) {
        const auto hit = hits(term);
        for (std::size_t i = 0; i < chosen.size(); ++i) {
            chosen[i] = static_cast<char>(chosen[i] & !hit[i]);
        }
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < chosen.size(); ++i) {
        if (chosen[i]) {
            out.push_back(i);
        }
    }
    if (out.empty()) {
        s.fail("selects no target");
    }
    return out;
}

std::vector<Target> choose_targets(const ControllerConfig& config, const TargetChoice& choice) {
    const TargetDefaults defaults = config.target_defaults();
    if (!choice.hosts.empty()) {
        if (choice.limit) {
            throw ConfigError(std::string(choice.limit_name) +
                              " selects from an inventory or the hosts file, not from -H");
        }
        std::string why;
        auto named = parse_target_args(choice.hosts, defaults, &why);
        if (!named) {
            throw ConfigError(why);
        }
        return std::move(*named);
    }
    Inventory inv;
    if (choice.inventory) {
        inv = load_ansible_inventory(*choice.inventory, defaults);
    } else if (choice.hosts_file) {
        inv = load_hosts_inventory(*choice.hosts_file, defaults);
    } else if (!config.inventory.empty()) {
        inv = load_ansible_inventory(config.inventory, defaults);
    } else {
        inv = load_hosts_inventory(config.hosts_file, defaults);
    }
    if (!choice.limit) {
        return std::move(inv.targets);
    }
    std::vector<Target> out;
    for (const std::size_t i : select_targets(inv, *choice.limit, choice.limit_name)) {
        out.push_back(std::move(inv.targets[i]));
    }
    return out;
}

}  // namespace mpasswd
