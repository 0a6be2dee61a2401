#include "config_keys.hpp"

#include <set>

#include "text.hpp"

namespace mctp::cfg {

namespace {

// Keys and section names are the file's text: shown escaped, and short.
constexpr std::size_t shown_name_max = 128;

struct Walk {
    const Syntax& syntax;
    const Router& route;
    std::string error;  // the first error; inih tells its line
    std::set<std::string> seen;

    int fail(std::string_view key, const std::string& why) {
        error = printable(key, shown_name_max) + ": " + why;
        return 0;
    }
};

int on_entry(void* user, const char* section, const char* name, const char* value) {
    auto& w = *static_cast<Walk*>(user);
    const std::string_view key(name);
    std::string why;
    const std::optional<SectionSink> sink = w.route(section, &why);
    if (!sink) {
        return w.fail(key, why);
    }
    if (!w.seen.insert(sink->id + '\n' + std::string(key)).second) {
        return w.fail(key, std::string(w.syntax.twice));
    }
    if (!sink->set(key, value, &why)) {
        return w.fail(key, why);
    }
    return 1;
}

}  // namespace

std::string range_text(unsigned long long min, unsigned long long max) {
    return "from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string seconds_range_text(std::chrono::milliseconds min, std::chrono::milliseconds max) {
    return "seconds from " + seconds_text(min) + " to " + seconds_text(max);
}

std::string relative_to(const std::string& config_path, std::string_view value) {
    if (value.starts_with('/')) {
        return std::string(value);
    }
    const auto slash = config_path.rfind('/');
    return slash == std::string::npos ? std::string(value)
                                      : config_path.substr(0, slash + 1) + std::string(value);
}

void parse_sections(const std::string& text, const std::string& path, const Syntax& syntax,
                    const Router& route) {
    Walk w{syntax, route, {}, {}};
    parse_ini(text, path, on_entry, &w, w.error, syntax.expected);
}

}  // namespace mctp::cfg
