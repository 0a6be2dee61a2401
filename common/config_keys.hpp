// Configuration keys as tables: one entry per key (name, how its value is
// parsed and checked, where it goes, how it is shown, what it means), and
// one parser skeleton over inih for every configuration file.
//
//   const cfg::KeyTable<Settings> table{
//       cfg::flag<Settings>("enabled", &Settings::enabled, "yes: answer"),
//       cfg::number<Settings>("port", &Settings::port, 1, 65535, "TCP port", "a port"),
//       ...};
//   cfg::parse_sections(text, path, syntax, [&](std::string_view section, std::string* why) {
//       ...return table.sink(settings, "id", path);  // or nullopt and *why
//   });
//
// The skeleton says "given twice", "unknown key", "in unknown section"
// and every range error as "FILE:LINE: KEY: why", with the key escaped;
// describe() prints every key of a table with its effective value.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config_file.hpp"

namespace mctp::cfg {

// "from 1 to 65535": how every range is said in an error message.
std::string range_text(unsigned long long min, unsigned long long max);
// "seconds from 0.1 to 3600".
std::string seconds_range_text(std::chrono::milliseconds min, std::chrono::milliseconds max);

// A file name as configured: absolute, or relative to the folder of the
// configuration file that names it.
std::string relative_to(const std::string& config_path, std::string_view value);

// One key of one kind of section. set() stores a good value in the object
// and returns true, or returns false with *why ("must be ...", without
// the key) and leaves the object as it was. show() gives the effective
// value as describe() prints it: a key that holds a secret shows only
// whether it is set, never the secret (its show must not touch it).
template <class T>
struct Key {
    std::string_view name;
    std::function<bool(T& obj, std::string_view value, const std::string& config_path,
                       std::string* why)>
        set;
    std::function<std::string(const T& obj)> show;
    std::string_view description;
};

// Where the keys of one section go: id counts keys for "given twice"
// (two sections with the same id are one section); set() is a table's.
struct SectionSink {
    std::string id;
    std::function<bool(std::string_view key, std::string_view value, std::string* why)> set;
};

// Given a section's name ("" before the first header), returns where its
// keys go, or nullopt with *why ("in unknown section [x]; ...").
using Router = std::function<std::optional<SectionSink>(std::string_view section, std::string* why)>;

struct Syntax {
    // What a line that is not INI should be: "'key = value' or '[mpasswd]'".
    std::string_view expected;
    // The message for a key given twice in one section.
    std::string_view twice = "given twice";
};

// Runs inih over text and hands every entry to the sink route() names.
// Stops at the first error and throws ConfigError "PATH:LINE: KEY: why"
// (the key escaped), or "PATH:LINE: syntax error (expected ...)".
void parse_sections(const std::string& text, const std::string& path, const Syntax& syntax,
                    const Router& route);

template <class T>
class KeyTable {
public:
    KeyTable(std::initializer_list<Key<T>> keys) : keys_(keys) {}

    [[nodiscard]] const std::vector<Key<T>>& keys() const { return keys_; }

    [[nodiscard]] const Key<T>* find(std::string_view name) const {
        for (const auto& k : keys_) {
            if (k.name == name) {
                return &k;
            }
        }
        return nullptr;
    }

    // false with *why "unknown key", or the key's own reason.
    bool set(T& obj, std::string_view key, std::string_view value, const std::string& path,
             std::string* why) const {
        const Key<T>* k = find(key);
        if (k == nullptr) {
            *why = "unknown key";
            return false;
        }
        return k->set(obj, value, path, why);
    }

    // A sink for parse_sections that sets obj's keys (obj and path must
    // outlive the parse).
    [[nodiscard]] SectionSink sink(T& obj, std::string id, const std::string& path) const {
        return SectionSink{std::move(id), [this, &obj, &path](std::string_view key,
                                                              std::string_view value,
                                                              std::string* why) {
                               return set(obj, key, value, path, why);
                           }};
    }

    // "name = value" lines, one per key, in the table's order.
    [[nodiscard]] std::string describe(const T& obj) const {
        std::string out;
        for (const auto& k : keys_) {
            out += std::string(k.name) + " = " + k.show(obj) + "\n";
        }
        return out;
    }

    // "name: description" lines, one per key.
    [[nodiscard]] std::string help() const {
        std::string out;
        for (const auto& k : keys_) {
            out += std::string(k.name) + ": " + std::string(k.description) + "\n";
        }
        return out;
    }

private:
    std::vector<Key<T>> keys_;
};

// ---- Kinds of keys. Each takes the member as a pointer (&T::port) or
// as an accessor for a nested one ([](auto& c) -> auto& { return c.a.b; }).

namespace detail {
template <class M>
auto access(M m) {
    if constexpr (std::is_member_object_pointer_v<M>) {
        return [m](auto& obj) -> auto& { return obj.*m; };
    } else {
        return m;
    }
}

// Shows a text member as it is, or `unset` while it is empty.
template <class Get>
auto text_or(Get get, std::string_view unset) {
    return [get, unset](const auto& obj) {
        return get(obj).empty() ? std::string(unset) : std::string(get(obj));
    };
}
}  // namespace detail

// yes/no, true/false, on/off, 1/0: "must be yes or no".
template <class T, class M>
Key<T> flag(std::string_view name, M member, std::string_view description) {
    auto get = detail::access(member);
    return Key<T>{name,
                  [get](T& obj, std::string_view v, const std::string&, std::string* why) {
                      if (!parse_bool(v, &get(obj))) {
                          *why = "must be yes or no";
                          return false;
                      }
                      return true;
                  },
                  [get](const T& obj) { return std::string(get(obj) ? "yes" : "no"); },
                  description};
}

// A decimal number: "must be NOUN from MIN to MAX".
template <class T, class M, class U>
Key<T> number(std::string_view name, M member, U min, U max, std::string_view description,
              std::string_view noun = "a number") {
    auto get = detail::access(member);
    const std::string range = "must be " + std::string(noun) + " " +
                              range_text(static_cast<unsigned long long>(min),
                                         static_cast<unsigned long long>(max));
    return Key<T>{name,
                  [get, min, max, range](T& obj, std::string_view v, const std::string&,
                                         std::string* why) {
                      if (!parse_uint(v, min, max, &get(obj))) {
                          *why = range;
                          return false;
                      }
                      return true;
                  },
                  [get](const T& obj) { return std::to_string(get(obj)); },
                  description};
}

// Seconds with an optional fraction: "must be seconds from MIN to MAX".
template <class T, class M>
Key<T> seconds(std::string_view name, M member, std::chrono::milliseconds min,
               std::chrono::milliseconds max, std::string_view description) {
    auto get = detail::access(member);
    const std::string range = "must be " + seconds_range_text(min, max);
    return Key<T>{name,
                  [get, min, max, range](T& obj, std::string_view v, const std::string&,
                                         std::string* why) {
                      if (!parse_seconds(v, min, max, &get(obj))) {
                          *why = range;
                          return false;
                      }
                      return true;
                  },
                  [get](const T& obj) { return seconds_text(get(obj)); },
                  description};
}

enum class PathRule {
    relative_to_config,  // a relative name is taken from the config's folder
    absolute,            // only an absolute name
};

// A file name, shown as `unset` while empty.
template <class T, class M>
Key<T> file(std::string_view name, M member, std::string_view description,
            PathRule rule = PathRule::relative_to_config, std::string_view unset = "(none)") {
    auto get = detail::access(member);
    return Key<T>{name,
                  [get, rule](T& obj, std::string_view v, const std::string& path,
                              std::string* why) {
                      if (rule == PathRule::absolute && !v.starts_with('/')) {
                          *why = "must be an absolute path";
                          return false;
                      }
                      if (v.empty()) {
                          *why = "must name a file";
                          return false;
                      }
                      get(obj) = relative_to(path, v);
                      return true;
                  },
                  detail::text_or(get, unset), description};
}

// A word that valid() accepts ("must be " + what otherwise), shown as
// `unset` while empty.
template <class T, class M>
Key<T> word(std::string_view name, M member, bool (*valid)(std::string_view) noexcept,
            std::string what, std::string_view description, std::string_view unset = "(none)") {
    auto get = detail::access(member);
    return Key<T>{name,
                  [get, valid, what](T& obj, std::string_view v, const std::string&,
                                     std::string* why) {
                      if (!valid(v)) {
                          *why = "must be " + what;
                          return false;
                      }
                      get(obj) = v;
                      return true;
                  },
                  detail::text_or(get, unset), description};
}

// Items separated by commas and/or blanks, at most max_items of them,
// each accepted by check_item (which returns why not, or ""); shown
// comma-separated, or as `unset` when there are none.
template <class T, class M>
Key<T> list(std::string_view name, M member, std::size_t max_items,
            std::function<std::string(const std::string& item)> check_item,
            std::string_view description, std::string_view unset = "(none)") {
    auto get = detail::access(member);
    return Key<T>{name,
                  [get, max_items, check_item](T& obj, std::string_view v, const std::string&,
                                               std::string* why) {
                      auto items = split_list(v);
                      if (items.size() > max_items) {
                          *why = "more than " + std::to_string(max_items) + " entries";
                          return false;
                      }
                      for (const auto& item : items) {
                          if (std::string w = check_item(item); !w.empty()) {
                              *why = std::move(w);
                              return false;
                          }
                      }
                      get(obj) = std::move(items);
                      return true;
                  },
                  [get, unset](const T& obj) {
                      std::string s;
                      for (const auto& x : get(obj)) {
                          s += (s.empty() ? "" : ", ") + x;
                      }
                      return s.empty() ? std::string(unset) : s;
                  },
                  description};
}

}  // namespace mctp::cfg
