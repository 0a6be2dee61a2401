#include "client.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include "dot.hpp"
#include "text.hpp"

namespace mctp {

namespace {

constexpr std::string_view crlf = "\r\n";
constexpr std::string_view quit_line = "QUIT\r\n";

// How much of a line that is not a reply is shown in the outcome.
constexpr std::size_t shown_line_max = 64;

// Lines out ahead of the reply due, at most: a user's "." and the next
// user's command and DATA.
constexpr std::size_t ahead_max = 3;

}  // namespace

std::string_view to_string(Client::Step s) noexcept {
    switch (s) {
    case Client::Step::banner: return "banner";
    case Client::Step::helo: return "HELO";
    case Client::Step::auth: return "AUTH";
    case Client::Step::vrfy: return "VRFY";
    case Client::Step::chpw: return "CHPW";
    case Client::Step::data: return "DATA";
    case Client::Step::password: return "password";
    case Client::Step::end_of_data: return "end of data";
    case Client::Step::quit: return "QUIT";
    case Client::Step::ehlo: return "EHLO";
    case Client::Step::scram_first: return "AUTH";
    case Client::Step::scram_final: return "SCRAM proof";
    case Client::Step::scram_done: return "SCRAM end";
    case Client::Step::test: return "TEST";
    case Client::Step::expr: return "EXPR";
    case Client::Step::lock: return "LOCK";
    case Client::Step::unlk: return "UNLK";
    case Client::Step::chck: return "CHCK";
    }
    return "?";
}

Secret Client::auth_line(const Secret& secret) {
    return Secret::join({"AUTH ", secret.view(), crlf});
}

Secret Client::data_line(const Secret& password) {
    const auto pw = password.view();
    return Secret::join({dot::stuffing(pw), pw, crlf});
}

Client::Client(Job job) : job_(std::move(job)) {
    if (!is_user_name(job_.user)) {
        throw std::invalid_argument("MCTP client: not a valid user name");
    }
    if (!is_helo_name(job_.helo_name)) {
        throw std::invalid_argument("MCTP client: not a valid HELO name");
    }
    steps_ = {{Step::banner, Send::nothing, Code::ready}, {Step::ehlo, Send::ehlo, Code::ok}};
    if (job_.auth == Auth::plain) {
        if (job_.auth_line == nullptr || job_.auth_line->empty()) {
            throw std::invalid_argument("MCTP client: no AUTH line");
        }
        steps_.push_back({Step::auth, Send::auth, Code::ok});
    } else {
        if (job_.secret == nullptr || job_.secret->empty()) {
            throw std::invalid_argument("MCTP client: no secret");
        }
        steps_.push_back({Step::scram_first, Send::scram_first, Code::auth_challenge});
        steps_.push_back({Step::scram_final, Send::scram_final, Code::auth_challenge});
        steps_.push_back({Step::scram_done, Send::scram_done, Code::ok});
    }
    items_.push_back({job_.action, job_.user, job_.data_line, job_.then_expire});
    for (const auto& more : job_.more) {
        items_.push_back(more);
    }
    job_.more.clear();
    for (std::size_t i = 0; i < items_.size(); ++i) {
        add_item(items_[i], i);
    }
    results_.resize(items_.size());
}

void Client::add_item(const Item& item, std::size_t index) {
    if (!is_user_name(item.user)) {
        throw std::invalid_argument("MCTP client: not a valid user name");
    }
    if (item.then_expire && item.action != Action::change && item.action != Action::test) {
        throw std::invalid_argument("MCTP client: EXPR after a change only");
    }
    first_step_.push_back(steps_.size());
    const auto add = [&](Step step, Send send, Code want) {
        steps_.push_back({step, send, want, index});
    };
    switch (item.action) {
    case Action::verify: add(Step::vrfy, Send::vrfy, Code::ok); return;
    case Action::expire: add(Step::expr, Send::expr, Code::ok); return;
    case Action::lock: add(Step::lock, Send::lock, Code::ok); return;
    case Action::unlock: add(Step::unlk, Send::unlk, Code::ok); return;
    case Action::change: add(Step::chpw, Send::chpw, Code::ok); break;
    case Action::test: add(Step::test, Send::test, Code::ok); break;
    case Action::check: add(Step::chck, Send::chck, Code::ok); break;
    }
    if (item.data_line == nullptr || item.data_line->empty()) {
        throw std::invalid_argument("MCTP client: no password line");
    }
    add(Step::data, Send::data, Code::start_data);
    add(Step::password, Send::password, Code::continue_data);
    add(Step::end_of_data, Send::end, Code::ok);
    if (item.then_expire && item.action == Action::change) {
        add(Step::expr, Send::expr, Code::ok);
    }
}

Client::Step Client::step() const noexcept {
    if (quit_due_ || quit_sent_) {
        return Step::quit;
    }
    return steps_[at_].step;
}

std::string_view Client::next() {
    if (done_) {
        return {};
    }
    if (finished()) {
        if (!quit_due_ || skip_ > 0) {
            return {};  // QUIT goes after the replies still due
        }
        quit_due_ = false;
        quit_sent_ = true;
        return quit_line;
    }
    if (waiting_) {
        if (!pipelining_ || ahead_.size() >= ahead_max || !may_send_ahead(last_sent_ + 1)) {
            return {};
        }
        ahead_.push_back(++last_sent_);
        return send_step(last_sent_);
    }
    if (skip_ > 0 && !(pipelining_ && opens_a_user(at_))) {
        return {};  // EXPR, LOCK, UNLK wait until the dropped replies are in
    }
    waiting_ = true;
    last_sent_ = at_;
    return send_step(at_);
}

std::optional<std::size_t> Client::user_under_way() const noexcept {
    const std::size_t item = steps_[at_].item;
    if (item == no_item || !results_[item].started ||
        results_[item].outcome.kind != Outcome::Kind::pending) {
        return std::nullopt;
    }
    return item;
}

bool Client::opens_a_user(std::size_t index) const {
    const StepSpec& spec = steps_[index];
    return spec.item != no_item && index == first_step_[spec.item] &&
           (spec.send == Send::chpw || spec.send == Send::test || spec.send == Send::chck ||
            spec.send == Send::vrfy);
}

bool Client::may_send_ahead(std::size_t index) const {
    if (index >= steps_.size()) {
        return false;
    }
    const StepSpec& spec = steps_[index];
    const StepSpec& before = steps_[index - 1];
    if (spec.item == no_item || before.item == no_item) {
        return false;  // nothing ahead before the users: EHLO and AUTH wait
    }
    switch (spec.send) {
    case Send::data:  // right behind its CHPW, TEST or CHCK
        return before.item == spec.item;
    case Send::end:  // right behind the password, which went after 354
        return before.send == Send::password;
    case Send::chpw:
    case Send::test:
    case Send::chck:
    case Send::vrfy:  // the next user, behind the last one's "."
        return opens_a_user(index) && before.send == Send::end;
    default:  // the password waits for 354; EXPR, LOCK, UNLK for their turn
        return false;
    }
}

std::string_view Client::send_step(std::size_t index) {
    const auto line = [this](std::string_view verb, std::string_view arg) -> std::string_view {
        out_.assign(verb);
        if (!arg.empty()) {
            out_ += ' ';
            out_ += arg;
        }
        out_ += crlf;
        return out_;
    };
    const StepSpec& spec = steps_[index];
    ItemResult* item = spec.item == no_item ? nullptr : &results_[spec.item];
    const std::string& user = item ? items_[spec.item].user : job_.user;
    if (item) {
        item->started = true;
    }
    switch (spec.send) {
    case Send::nothing: break;
    case Send::helo: return line("HELO", job_.helo_name);
    case Send::ehlo: return line("EHLO", job_.helo_name);
    case Send::scram_first:
    case Send::scram_final: out_ = std::move(scram_out_); scram_out_.clear(); return out_;
    case Send::scram_done: return crlf;
    case Send::auth: return job_.auth_line->view();
    case Send::vrfy: return line("VRFY", user);
    case Send::chpw: return line("CHPW", user);
    case Send::test: return line("TEST", user);
    case Send::chck: return line("CHCK", user);
    case Send::expr: item->acted = true; return line("EXPR", user);
    case Send::lock: item->acted = true; return line("LOCK", user);
    case Send::unlk: item->acted = true; return line("UNLK", user);
    case Send::data: return line("DATA", "");
    case Send::password: return items_[spec.item].data_line->view();
    case Send::end:
        end_sent_ = true;
        item->acted = item->acted || items_[spec.item].action == Action::change;
        return line(dot::end, "");
    }
    return {};
}

void Client::advance_to(std::size_t index) {
    at_ = index;
    waiting_ = !ahead_.empty() && ahead_.front() == index;
    if (waiting_) {
        ahead_.pop_front();  // its line went out ahead: its reply is due
    }
}

void Client::on_line(std::string_view line) {
    if (done_) {
        return;
    }
    if (quit_sent_) {
        done_ = true;  // whatever the answer to QUIT is
        return;
    }
    const auto shown = [&] { return "'" + printable(line, shown_line_max) + "'"; };
    if (skip_ > 0) {
        // The reply to a line sent ahead for a user already decided (the
        // DATA behind a refused CHPW): a refusal, read and dropped, also
        // after the outcome (QUIT waits for it). Anything else means the
        // target took the line: it and this client no longer agree.
        const auto r = parse_reply_line(line);
        --skip_;
        const bool refusal = r && !r->more && number(r->code) >= 400;
        if (refusal && !closes(r->code)) {
            return;
        }
        if (finished()) {
            quit_due_ = false;  // no courtesy to a target out of step or gone
            done_ = true;
        } else if (refusal) {
            finish(Outcome::Kind::refused, r->code, printable(r->text, shown_line_max));
        } else {
            finish(Outcome::Kind::protocol_error, std::nullopt,
                   "a reply other than a refusal to a line sent ahead for a user already "
                   "decided: " + shown());
        }
        return;
    }
    if (finished()) {
        return;  // QUIT not yet handed out: nothing is due
    }
    if (!waiting_) {
        finish(Outcome::Kind::protocol_error, std::nullopt, "a reply before the command: " + shown());
        return;
    }
    auto r = parse_reply_line(line);
    if (!r) {
        finish(Outcome::Kind::protocol_error, std::nullopt, "not an MCTP reply: " + shown());
        return;
    }
    if (!lines_.empty() && r->code != reply_code_) {
        finish(Outcome::Kind::protocol_error, std::nullopt,
               "a multi-line reply that changes its code: " + shown());
        return;
    }
    reply_code_ = r->code;
    lines_.push_back(std::move(r->text));
    if (!r->more) {
        on_reply(r->code);
    } else if (lines_.size() >= reply_lines_max) {
        finish(Outcome::Kind::protocol_error, std::nullopt,
               "reply longer than " + std::to_string(reply_lines_max) + " lines");
    }
}

void Client::set_channel_binding(std::string binding) { binding_ = std::move(binding); }

namespace {

// The verb an action needs announced in EHLO; empty for VRFY and CHPW.
std::string_view announced_verb(Client::Action a) noexcept {
    switch (a) {
    case Client::Action::test: return "TEST";
    case Client::Action::expire: return "EXPR";
    case Client::Action::lock: return "LOCK";
    case Client::Action::unlock: return "UNLK";
    case Client::Action::check: return "CHCK";
    case Client::Action::verify:
    case Client::Action::change: break;
    }
    return {};
}

}  // namespace

std::vector<std::string_view> Client::needed_verbs() const {
    std::vector<std::string_view> verbs;
    const auto need = [&](std::string_view v) {
        if (!v.empty() && std::find(verbs.begin(), verbs.end(), v) == verbs.end()) {
            verbs.push_back(v);
        }
    };
    for (const auto& item : items_) {
        need(announced_verb(item.action));
        if (item.then_expire) {
            need("EXPR");
        }
    }
    return verbs;
}

bool Client::on_ehlo(Code code) {
    const auto needed = needed_verbs();
    if (code == Code::unknown_command) {
        if (!needed.empty()) {
            finish(Outcome::Kind::unsupported, code,
                   "the target does not know EHLO, so not " + std::string(needed.front()) +
                       " (an old mpasswdd)");
            return false;
        }
        if (job_.auth == Auth::plain) {
            // An old responder: HELO instead, then the old AUTH.
            steps_[at_] = {Step::helo, Send::helo, Code::ok};
            mechanism_ = "plain";
            waiting_ = false;
            return false;
        }
        finish(Outcome::Kind::unsupported, code,
               "the target does not know EHLO, so not AUTH SCRAM-SHA-256 (an old mpasswdd; "
               "see auth=plain in mpasswd.conf(5))");
        return false;
    }
    if (code != Code::ok) {
        return true;
    }
    bool scram = false;
    bool plus = false;
    std::vector<std::string> keywords;
    for (std::size_t i = 1; i < lines_.size(); ++i) {
        std::string upper = lines_[i];
        for (auto& c : upper) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        keywords.push_back(upper);
        pipelining_ = pipelining_ || (upper == "PIPELINING" && job_.pipelining);
        if (!upper.starts_with("AUTH ")) {
            continue;
        }
        std::size_t at = 5;
        while (at < upper.size()) {
            const auto end = std::min(upper.find(' ', at), upper.size());
            const std::string_view word(upper.data() + at, end - at);
            scram = scram || word == "SCRAM-SHA-256";
            plus = plus || word == "SCRAM-SHA-256-PLUS";
            at = end + 1;
        }
    }
    for (const auto verb : needed) {
        if (std::find(keywords.begin(), keywords.end(), verb) != keywords.end()) {
            continue;
        }
        finish(Outcome::Kind::unsupported, code,
               verb == "TEST" ? std::string("the target does not announce TEST (EHLO): it cannot "
                                            "check the password first (an old mpasswdd)")
                              : "the target does not announce " + std::string(verb) +
                                    " (EHLO): it does not offer that operation (an mpasswdd "
                                    "without account operations); nothing was sent");
        return false;
    }
    if (job_.auth == Auth::plain) {
        mechanism_ = "plain";
        return true;
    }
    if (!scram) {
        finish(Outcome::Kind::unsupported, code,
               "the target does not offer AUTH SCRAM-SHA-256 (EHLO)");
        return false;
    }
    // With a channel binding the target does not offer PLUS for, "y": a
    // target that does offer it (a relay hid it) refuses the exchange.
    const bool bind = plus && !binding_.empty();
    const auto binding = bind                ? scram::Binding::tls_exporter
                         : binding_.empty() ? scram::Binding::none
                                            : scram::Binding::client_only;
    mechanism_ = bind ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
    scram_ = std::make_unique<scram::Client>(job_.helo_name, binding,
                                             bind ? binding_ : std::string());
    scram_out_ = "AUTH " + mechanism_ + " " + scram::base64(scram_->first()) + std::string(crlf);
    return true;
}

bool Client::on_scram(Code code, const std::string& text) {
    const Step step = steps_[at_].step;
    const bool challenge = code == Code::auth_challenge;
    if (step == Step::scram_done || (!challenge && number(code) >= 400 &&
                                     !(step == Step::scram_final && code == Code::access_denied))) {
        return true;  // the usual rules
    }
    std::string why;
    const auto untrusted = [&](std::string what) {
        scram_.reset();
        finish(Outcome::Kind::untrusted, code, std::move(what));
        return false;
    };
    if (!challenge) {
        if (step == Step::scram_final) {
            return untrusted("the target refused our proof: it holds the verifier of another "
                             "secret (or this controller's secret is wrong)");
        }
        return untrusted("the target answered " + std::to_string(number(code)) +
                         " before any proof: it is not a responder that knows this controller");
    }
    const auto message = scram::unbase64(text);
    if (!message) {
        return untrusted("the target's SCRAM challenge is not base64");
    }
    if (step == Step::scram_first) {
        auto final = scram_->final(*message, job_.secret->view(), &why, job_.keys);
        if (!final) {
            return untrusted("the target's SCRAM challenge is unusable: " + why);
        }
        scram_out_ = scram::base64(*final) + std::string(crlf);
        return true;
    }
    if (!scram_->verify(*message, &why)) {
        return untrusted(why);
    }
    scram_.reset();
    return true;
}

void Client::on_reply(Code code) {
    std::string text;
    for (const auto& l : lines_) {
        if (!text.empty() && !l.empty()) {
            text += ' ';
        }
        text += l;
    }
    const Step step = steps_[at_].step;
    if (step == Step::ehlo && !on_ehlo(code)) {
        lines_.clear();
        return;
    }
    lines_.clear();
    if ((step == Step::scram_first || step == Step::scram_final) && !on_scram(code, text)) {
        return;
    }
    const StepSpec& spec = steps_[at_];
    if (code == spec.want) {
        if (spec.step == Step::end_of_data) {
            data_refusal_.reset();
        }
        if (spec.item != no_item && spec.step == Step::end_of_data &&
            items_[spec.item].action == Action::change) {
            results_[spec.item].changed = true;
        }
        if (spec.item != no_item &&
            (at_ + 1 == steps_.size() || steps_[at_ + 1].item != spec.item)) {
            decide_item(Outcome::Kind::ok, code, std::move(text));
            return;
        }
        if (at_ + 1 == steps_.size()) {
            finish(Outcome::Kind::ok, code, std::move(text));
            return;
        }
        advance_to(at_ + 1);
        return;
    }
    if (number(code) >= 400) {
        if (spec.step == Step::password && !closes(code)) {
            // The target is still reading data (a line too long for it gets
            // 501 and the session stays in RECEIVING): the "." ends the
            // data, and its reply decides. Refused, this refusal is the
            // one reported; a 250 means the target made the change.
            data_refusal_ = Outcome{Outcome::Kind::refused, code, std::move(text), spec.step};
            advance_to(at_ + 1);
            return;
        }
        if (spec.item != no_item && !closes(code)) {
            const bool different = items_[spec.item].action == Action::check &&
                                   spec.step == Step::end_of_data &&
                                   code == Code::transaction_failed;
            if (data_refusal_ && spec.step == Step::end_of_data && !different) {
                auto kept = std::move(*data_refusal_);
                data_refusal_.reset();
                decide_item(kept.kind, *kept.code, std::move(kept.text), kept.step);
                return;
            }
            data_refusal_.reset();
            decide_item(different ? Outcome::Kind::different : Outcome::Kind::refused, code,
                        std::move(text));
            return;
        }
        finish(Outcome::Kind::refused, code, std::move(text));
        return;
    }
    finish(Outcome::Kind::protocol_error, code,
           "unexpected reply " + std::to_string(number(code)) + " " + text);
}

void Client::decide_item(Outcome::Kind kind, Code code, std::string text,
                         std::optional<Step> step) {
    const std::size_t item = steps_[at_].item;
    results_[item].outcome = Outcome{kind, code, text, step.value_or(steps_[at_].step)};
    ++decided_;
    // This user's lines that went out ahead: their replies come first.
    while (!ahead_.empty() && steps_[ahead_.front()].item == item) {
        ahead_.pop_front();
        ++skip_;
    }
    if (item + 1 == items_.size()) {
        finish(kind, code, std::move(text), step);
        return;
    }
    advance_to(first_step_[item + 1]);
}

void Client::finish(Outcome::Kind kind, std::optional<Code> code, std::string text,
                    std::optional<Step> step) {
    outcome_ = Outcome{kind, code, std::move(text), step.value_or(steps_[at_].step)};
    // The user under way gets what ended the session.
    if (const auto item = steps_[at_].item;
        item != no_item && results_[item].started &&
        results_[item].outcome.kind == Outcome::Kind::pending) {
        results_[item].outcome = outcome_;
        ++decided_;
    }
    lines_.clear();
    // A courtesy after a result, as SMTP clients end a session; not after
    // a reply that closed it, nor to a peer that does not speak MCTP.
    quit_due_ = kind == Outcome::Kind::ok ||
                ((kind == Outcome::Kind::refused || kind == Outcome::Kind::untrusted ||
                  kind == Outcome::Kind::unsupported || kind == Outcome::Kind::different) &&
                 !(code && closes(*code)));
    done_ = !quit_due_;
}

}  // namespace mctp
