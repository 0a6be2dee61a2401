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
    if (job_.action == Action::verify) {
        steps_.push_back({Step::vrfy, Send::vrfy, Code::ok});
        return;
    }
    if (job_.data_line == nullptr || job_.data_line->empty()) {
        throw std::invalid_argument("MCTP client: no password line");
    }
    if (job_.action == Action::test) {
        steps_.push_back({Step::test, Send::test, Code::ok});
    } else {
        steps_.push_back({Step::chpw, Send::chpw, Code::ok});
    }
    steps_.push_back({Step::data, Send::data, Code::start_data});
    steps_.push_back({Step::password, Send::password, Code::continue_data});
    steps_.push_back({Step::end_of_data, Send::end, Code::ok});
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
        if (!quit_due_) {
            return {};
        }
        quit_due_ = false;
        quit_sent_ = true;
        return quit_line;
    }
    if (waiting_) {
        return {};
    }
    waiting_ = true;
    const auto line = [this](std::string_view verb, std::string_view arg) -> std::string_view {
        out_.assign(verb);
        if (!arg.empty()) {
            out_ += ' ';
            out_ += arg;
        }
        out_ += crlf;
        return out_;
    };
    switch (steps_[at_].send) {
    case Send::nothing: break;
    case Send::helo: return line("HELO", job_.helo_name);
    case Send::ehlo: return line("EHLO", job_.helo_name);
    case Send::scram_first:
    case Send::scram_final: out_ = std::move(scram_out_); scram_out_.clear(); return out_;
    case Send::scram_done: return crlf;
    case Send::auth: return job_.auth_line->view();
    case Send::vrfy: return line("VRFY", job_.user);
    case Send::chpw: return line("CHPW", job_.user);
    case Send::test: return line("TEST", job_.user);
    case Send::data: return line("DATA", "");
    case Send::password: return job_.data_line->view();
    case Send::end: end_sent_ = true; return line(dot::end, "");
    }
    return {};
}

void Client::on_line(std::string_view line) {
    if (done_) {
        return;
    }
    if (quit_sent_) {
        done_ = true;  // whatever the answer to QUIT is
        return;
    }
    if (finished()) {
        return;  // QUIT not yet handed out: nothing is due
    }
    const auto shown = [&] { return "'" + printable(line, shown_line_max) + "'"; };
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

bool Client::on_ehlo(Code code) {
    if (code == Code::unknown_command) {
        if (job_.action == Action::test) {
            finish(Outcome::Kind::unsupported, code,
                   "the target does not know EHLO, so not TEST (an old mpasswdd)");
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
    bool test = false;
    for (std::size_t i = 1; i < lines_.size(); ++i) {
        std::string upper = lines_[i];
        for (auto& c : upper) {
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        test = test || upper == "TEST";
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
    if (job_.action == Action::test && !test) {
        finish(Outcome::Kind::unsupported, code,
               "the target does not announce TEST (EHLO): it cannot check the password "
               "first (an old mpasswdd)");
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
    if (code == steps_[at_].want) {
        if (at_ + 1 == steps_.size()) {
            finish(Outcome::Kind::ok, code, std::move(text));
            return;
        }
        ++at_;
        waiting_ = false;
        return;
    }
    if (number(code) >= 400) {
        finish(Outcome::Kind::refused, code, std::move(text));
        return;
    }
    finish(Outcome::Kind::protocol_error, code,
           "unexpected reply " + std::to_string(number(code)) + " " + text);
}

void Client::finish(Outcome::Kind kind, std::optional<Code> code, std::string text) {
    outcome_ = Outcome{kind, code, std::move(text), steps_[at_].step};
    lines_.clear();
    // A courtesy after a result, as SMTP clients end a session; not after
    // a reply that closed it, nor to a peer that does not speak MCTP.
    quit_due_ = kind == Outcome::Kind::ok ||
                ((kind == Outcome::Kind::refused || kind == Outcome::Kind::untrusted ||
                  kind == Outcome::Kind::unsupported) &&
                 !(code && closes(*code)));
    done_ = !quit_due_;
}

}  // namespace mctp
