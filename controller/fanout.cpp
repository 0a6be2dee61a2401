#include "fanout.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <optional>

#include "client.hpp"
#include "controller_limits.hpp"
#include "operations.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A step that ran out of time; what it was waiting for is in the text.
struct StepTimeout {
    std::string what;
};

// The target's bytes cannot be framed into a reply line.
struct NotMctp {
    std::string what;
};

std::string seconds(milliseconds ms) {
    const auto s = ms.count() / 1000;
    const auto frac = ms.count() % 1000;
    return frac == 0 ? std::to_string(s) + " s"
                     : std::to_string(s) + "." + std::to_string(frac / 100) + " s";
}

// Runs op until the deadline; on expiry cancels it, waits for it to end
// (every transport operation is cancellable) and throws StepTimeout.
template <class T>
asio::awaitable<T> within(asio::awaitable<T> op, Clock::time_point deadline, std::string what) {
    using asio::experimental::deferred;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, deadline);
    auto [order, error, value, timer_ec] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, std::move(op), deferred), timer.async_wait(deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    if (order[0] != 0) {
        throw StepTimeout{std::move(what)};
    }
    if (error) {
        std::rethrow_exception(error);
    }
    co_return std::move(value);
}

// A void operation as one with a value, so that within() has one form.
asio::awaitable<bool> done(asio::awaitable<void> op) {
    co_await std::move(op);
    co_return true;
}

asio::awaitable<void> within(asio::awaitable<void> op, Clock::time_point deadline,
                             std::string what) {
    co_await within(done(std::move(op)), deadline, std::move(what));
}

mctp::Client::Action client_action(Action a) {
    switch (a) {
    case Action::verify: return mctp::Client::Action::verify;
    case Action::change: return mctp::Client::Action::change;
    case Action::test: return mctp::Client::Action::test;
    case Action::expire: return mctp::Client::Action::expire;
    case Action::lock: return mctp::Client::Action::lock;
    case Action::unlock: return mctp::Client::Action::unlock;
    case Action::check: return mctp::Client::Action::check;
    }
    return mctp::Client::Action::verify;
}

// The client's items: the first is the job's own user.
mctp::Client::Job client_job(const std::vector<mctp::Client::Item>& items,
                             const Target& target, const EngineSettings& settings,
                             const mctp::Secret* auth_line, mctp::scram::KeyCache& keys) {
    mctp::Client::Job job{items.at(0).action,
                          items[0].user,
                          settings.helo_name,
                          auth_line,
                          items[0].data_line,
                          target.auth_plain ? mctp::Client::Auth::plain
                                            : mctp::Client::Auth::scram,
                          settings.secret,
                          &keys};
    job.then_expire = items[0].then_expire;
    job.more.assign(items.begin() + 1, items.end());
    return job;
}

Outcome engine_outcome(mctp::Client::Outcome::Kind k) {
    using Kind = mctp::Client::Outcome::Kind;
    switch (k) {
    case Kind::ok: return Outcome::ok;
    case Kind::refused: return Outcome::refused;
    case Kind::untrusted: return Outcome::untrusted;
    case Kind::unsupported: return Outcome::unsupported;
    case Kind::different: return Outcome::different;
    case Kind::pending:
    case Kind::protocol_error: break;
    }
    return Outcome::protocol_error;
}

bool acts(mctp::Client::Action a) {
    return a == mctp::Client::Action::change || a == mctp::Client::Action::expire ||
           a == mctp::Client::Action::lock || a == mctp::Client::Action::unlock;
}

// One target's session, from connect to QUIT: the stream, the deadlines
// and the framing of reply lines. What to say and what the replies mean is
// the MCTP client's (protocol/client.hpp).
class Dialogue {
public:
    Dialogue(const Target& target, const EngineSettings& settings,
             const std::vector<mctp::Client::Item>& items, const mctp::Secret* auth_line,
             mctp::scram::KeyCache& keys)
        : target_(target), settings_(settings), items_(items),
          client_(client_job(items, target, settings, auth_line, keys)), start_(Clock::now()),
          target_deadline_(start_ + settings.target_timeout) {}

    // One result per item.
    asio::awaitable<std::vector<Result>> run(Transport& transport) {
        Result r;
        try {
            r = co_await talk(transport);
        } catch (const NotMctp& e) {
            r = make(Outcome::protocol_error, 0, e.what);
        } catch (const StepTimeout& t) {
            r = make(Outcome::timeout, 0, t.what);
        } catch (const UntrustedError& e) {
            r = make(Outcome::untrusted, 0, e.what());
        } catch (const TransportError& e) {
            r = make(Outcome::unreachable, 0, e.what());
        } catch (const std::system_error& e) {
            r = from_system_error(e);
        } catch (const std::exception& e) {
            r = make(Outcome::protocol_error, 0, e.what());
        }
        // The client ends a session it got an answer from with QUIT, when
        // the target has not closed it; never after a timeout or an error.
        if (stream_ && client_.finished() && !client_.done()) {
            co_await quit();
        }
        if (stream_) {
            stream_->close();
        }
        r.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start_);
        co_return per_item(r);
    }

private:
    // What became of each user, from the session's result r.
    std::vector<Result> per_item(const Result& r) const {
        const auto& items = client_.items();
        const bool any_started =
            std::any_of(items.begin(), items.end(), [](const auto& i) { return i.started; });
        std::vector<Result> out;
        out.reserve(items.size());
        std::string under_way;
        const auto under_way_index = client_.user_under_way();
        for (std::size_t i = 0; i < items.size(); ++i) {
            const auto& item = items[i];
            Result x = r;
            const bool pending = item.outcome.kind == mctp::Client::Outcome::Kind::pending;
            // The user the session ended under, undecided (a timeout); any
            // other user still pending was not tried, even one whose command
            // (and DATA) went out ahead (PIPELINING): nothing was done for it.
            const bool is_under_way = under_way_index == i;
            if (!pending) {
                const auto& o = item.outcome;
                x.outcome = engine_outcome(o.kind);
                x.code = o.code ? mctp::number(*o.code) : 0;
                x.text = mctp::printable(o.text, limits::result_text_max);
                x.step = std::string(mctp::to_string(o.step));
            } else if (any_started && !is_under_way) {
                x.outcome = Outcome::protocol_error;
                x.code = 0;
                x.text = "not tried: the session ended before this user (" + under_way + ")";
            }
            if (is_under_way) {
                under_way = items_[i].user + ": " + std::string(outcome_name(x.outcome));
            }
            if (x.outcome == Outcome::ok) {
                x.applied = acts(items_[i].action) ? Applied::yes : Applied::no;
            } else if (item.changed) {
                // The CHPW was done; the EXPR after it was refused, or its
                // reply never came.
                x.applied = Applied::yes;
                x.text = (item.outcome.kind == mctp::Client::Outcome::Kind::pending
                              ? "password changed, but perhaps not made one-time (EXPR sent, "
                                "no reply): "
                              : "password changed, but not made one-time: ") +
                         x.text;
            } else if (item.acted && x.outcome != Outcome::refused) {
                // From the end of the data (or the verb) on, the target may
                // act at any moment: only its reply says whether it did.
                x.applied = Applied::maybe;
                x.maybe_applied = true;
                x.text += items_[i].action == mctp::Client::Action::change
                              ? "; the password was sent and may have been changed"
                              : "; the command was sent and may have been carried out";
            }
            out.push_back(std::move(x));
        }
        return out;
    }

    asio::awaitable<Result> talk(Transport& transport) {
        stream_ = co_await within(transport.connect(target_), deadline(settings_.connect_timeout),
                                  "no connection within " + seconds(settings_.connect_timeout));
        connected_ = true;
        client_.set_channel_binding(stream_->tls_exporter());
        auto reply_due = deadline(settings_.reply_timeout);
        while (!client_.finished()) {
            if (const auto bytes = client_.next(); !bytes.empty()) {
                co_await within(stream_->write_all(bytes), deadline(settings_.reply_timeout),
                                "could not send " + step() + " within " +
                                    seconds(settings_.reply_timeout));
                reply_due = deadline(settings_.reply_timeout);
                continue;
            }
            // Every line of one reply is due within the reply timeout.
            const std::string silence = client_.step() == mctp::Client::Step::banner
                                            ? "no banner"
                                            : "no reply to " + step();
            client_.on_line(co_await within(read_line(), reply_due,
                                            silence + " within " +
                                                seconds(settings_.reply_timeout)));
            // In a batch, target_timeout bounds each user's part of the
            // session: a long batch is not cut short by its length alone.
            if (client_.decided() != decided_) {
                decided_ = client_.decided();
                target_deadline_ = Clock::now() + settings_.target_timeout;
            }
        }
        const auto& o = client_.outcome();
        co_return make(engine_outcome(o.kind), o.code ? mctp::number(*o.code) : 0, o.text);
    }

    // The step for reports: connect, then the client's; once decided, the
    // step that decided it.
    std::string step() const {
        if (!connected_) {
            return "connect";
        }
        return std::string(mctp::to_string(client_.finished() ? client_.outcome().step
                                                               : client_.step()));
    }

    Clock::time_point deadline(milliseconds step) const {
        return std::min(Clock::now() + step, target_deadline_);
    }

    Result make(Outcome o, int code, std::string text) const {
        Result r;
        r.outcome = o;
        r.code = code;
        // Whatever the target, ssh or a library said, it reaches the table,
        // JSON, PAM messages and syslog only as printable ASCII.
        r.text = mctp::printable(text, limits::result_text_max);
        r.step = step();
        r.auth = client_.mechanism();
        if (o == Outcome::timeout && Clock::now() >= target_deadline_) {
            r.text = "not done within target_timeout (" + seconds(settings_.target_timeout) + ")";
        }
        return r;
    }

    Result from_system_error(const std::system_error& e) const {
        const auto ec = e.code();
        if (!connected_) {
            std::string why = ec.message();
            if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
                ec == asio::error::no_data) {
                why = "cannot resolve " + target_.host + ": " + why;
            }
            return make(Outcome::unreachable, 0, why);
        }
        if (ec == asio::error::eof || ec == asio::error::connection_reset ||
            ec == asio::error::broken_pipe) {
            return make(Outcome::protocol_error, 0, "connection closed by the target");
        }
        return make(Outcome::protocol_error, 0, ec.message());
    }

    // One reply line, terminator removed; a line longer than any responder
    // may send (terminator included) is not MCTP.
    asio::awaitable<std::string> read_line() {
        const auto too_long = [] {
            return NotMctp{"reply longer than " + std::to_string(limits::reply_line_max) +
                           " octets"};
        };
        for (;;) {
            if (const auto lf = buffer_.find('\n'); lf != std::string::npos) {
                if (lf >= limits::reply_line_max) {
                    throw too_long();
                }
                std::string line = buffer_.substr(0, lf);
                buffer_.erase(0, lf + 1);
                if (line.ends_with('\r')) {
                    line.pop_back();
                }
                co_return line;
            }
            if (buffer_.size() >= limits::reply_line_max) {
                throw too_long();
            }
            char chunk[1024];
            const std::size_t n = co_await stream_->read_some(chunk);
            buffer_.append(chunk, n);
        }
    }

    // A courtesy after the result is known: never changes the result.
    asio::awaitable<void> quit() {
        try {
            const auto until = std::min(Clock::now() + limits::quit_timeout, target_deadline_);
            while (!client_.done()) {
                if (const auto bytes = client_.next(); !bytes.empty()) {
                    co_await within(stream_->write_all(bytes), until, "QUIT");
                    continue;
                }
                client_.on_line(co_await within(read_line(), until, "QUIT"));
            }
        } catch (...) {
        }
    }

    const Target& target_;
    const EngineSettings& settings_;
    const std::vector<mctp::Client::Item>& items_;
    mctp::Client client_;
    Clock::time_point start_;
    Clock::time_point target_deadline_;
    std::size_t decided_ = 0;  // users with their outcome, as last seen
    std::unique_ptr<Stream> stream_;
    std::string buffer_;
    bool connected_ = false;
};

}  // namespace

std::string_view outcome_name(Outcome o) noexcept {
    switch (o) {
    case Outcome::ok: return "ok";
    case Outcome::refused: return "refused";
    case Outcome::unreachable: return "unreachable";
    case Outcome::untrusted: return "untrusted";
    case Outcome::timeout: return "timeout";
    case Outcome::protocol_error: return "protocol-error";
    case Outcome::unsupported: return "unsupported";
    case Outcome::skipped: return "skipped";
    case Outcome::different: return "different";
    case Outcome::unchanged: return "unchanged";
    }
    return "unknown";
}

std::string_view action_name(Action a) noexcept {
    switch (a) {
    case Action::verify: return "verify";
    case Action::change: return "change";
    case Action::test: return "test";
    case Action::expire: return "expire";
    case Action::lock: return "lock";
    case Action::unlock: return "unlock";
    case Action::check: return "check";
    }
    return "unknown";
}

void check_job(const EngineSettings& settings, const Job& job) {
    if (!mctp::is_user_name(job.user)) {
        throw JobError("'" + mctp::printable(job.user, 64) +
                       "' is not a valid user name (letters, digits, '.', '_', '-', at most 32)");
    }
    if (!mctp::is_helo_name(settings.helo_name)) {
        throw JobError("the controller name '" + mctp::printable(settings.helo_name, 128) +
                       "' is not a valid host name");
    }
    if (settings.secret == nullptr || settings.secret->empty()) {
        throw JobError("no controller secret");
    }
    if (settings.parallel == 0) {
        throw JobError("parallel must be at least 1");
    }
    if (job.if_different && job.action != Action::change) {
        throw JobError(job.action == Action::expire
                           ? "--if-different does not go with --expire (a one-time password is "
                             "set everywhere)"
                           : "--if-different goes with a change only");
    }
    if (needs_password(job.action)) {
        if (job.password == nullptr || job.password->empty()) {
            throw JobError("the new password is empty");
        }
        if (job.password->size() > limits::password_max) {
            throw JobError("the new password is longer than " +
                           std::to_string(limits::password_max) + " octets");
        }
        if (!mctp::is_password_text(job.password->view())) {
            throw JobError("the new password is not valid UTF-8 text (control characters "
                           "cannot be sent)");
        }
    }
}

std::vector<std::vector<Result>> run_sessions(
    const std::vector<Target>& targets, const std::vector<std::size_t>& which,
    const EngineSettings& settings, const std::vector<SessionItem>& items, Transport& transport,
    const std::function<void(std::size_t, const std::vector<Result>&)>& on_session) {
    // The wire forms of the secret and passwords, built once, shared by
    // every session, wiped on return; the old AUTH line only for targets
    // that ask for it. The PBKDF2 of the secret is derived once per salt
    // and iteration count for the whole run, and wiped with the cache.
    std::optional<mctp::Secret> auth_line;
    if (std::any_of(which.begin(), which.end(),
                    [&](std::size_t i) { return targets.at(i).auth_plain; })) {
        auth_line = mctp::Client::auth_line(*settings.secret);
    }
    mctp::scram::KeyCache keys;
    // One data line per distinct password (a batch: one per user).
    std::vector<mctp::Secret> data_lines;
    data_lines.reserve(items.size());
    std::vector<mctp::Client::Item> client_items;
    client_items.reserve(items.size());
    const mctp::Secret* last_password = nullptr;
    for (const auto& item : items) {
        const mctp::Secret* data = nullptr;
        if (item.password != nullptr) {
            if (item.password != last_password) {
                data_lines.push_back(mctp::Client::data_line(*item.password));
                last_password = item.password;
            }
            data = &data_lines.back();
        }
        client_items.push_back({client_action(item.action), item.user, data, item.then_expire});
    }
    std::vector<std::vector<Result>> results(targets.size());
    if (which.empty() || items.empty()) {
        return results;
    }
    asio::io_context io(1);
    std::size_t next = 0;
    const std::size_t workers = std::min<std::size_t>(settings.parallel, which.size());
    std::size_t running = workers;
    const auto worker = [&]() -> asio::awaitable<void> {
        while (next < which.size()) {
            const std::size_t i = which[next++];
            Dialogue d(targets[i], settings, client_items, auth_line ? &*auth_line : nullptr,
                       keys);
            results[i] = co_await d.run(transport);
            if (on_session) {
                on_session(i, results[i]);
            }
        }
    };
    std::exception_ptr failure;
    for (std::size_t w = 0; w < workers; ++w) {
        asio::co_spawn(io, worker, [&](std::exception_ptr e) {
            if (e && !failure) {
                failure = e;
            }
            if (--running == 0) {
                // A resolver thread may still be in getaddrinfo: do not wait for it here.
                io.stop();
            }
        });
    }
    io.run();
    if (failure) {
        std::rethrow_exception(failure);
    }
    return results;
}

namespace {

// One user, one session per target.
std::vector<Result> run_once(const std::vector<Target>& targets, const EngineSettings& settings,
                             const Job& job, Transport& transport,
                             const std::function<void(std::size_t, const Result&)>& on_result) {
    std::vector<std::size_t> all(targets.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
        all[i] = i;
    }
    const std::vector<SessionItem> items{
        {job.action, job.user, job.action == Action::verify ? nullptr : job.password, false}};
    auto sessions = run_sessions(targets, all, settings, items, transport,
                                 [&](std::size_t i, const std::vector<Result>& r) {
                                     if (on_result) {
                                         on_result(i, r.at(0));
                                     }
                                 });
    std::vector<Result> results(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        results[i] = std::move(sessions[i].at(0));
    }
    return results;
}

}  // namespace

std::vector<Result> run(const std::vector<Target>& targets, const EngineSettings& settings,
                        const Job& job, Transport& transport,
                        const std::function<void(std::size_t, const Result&)>& on_result) {
    check_job(settings, job);
    if (is_account_operation(job)) {
        return run_operation(targets, settings, job, transport, on_result);
    }
    const auto phase = [](std::vector<Result> results, std::string_view name) {
        for (auto& r : results) {
            r.phase = name;
            // In TEST the data steps are TEST's: the table says where.
            if (name == "test" && (r.step == "DATA" || r.step == "password" ||
                                   r.step == "end of data")) {
                r.step = "TEST";
            }
        }
        return results;
    };
    if (job.action == Action::verify) {
        return run_once(targets, settings, job, transport, on_result);
    }
    if (job.action == Action::test) {
        return phase(run_once(targets, settings, job, transport, on_result), "test");
    }
    if (!job.best_effort) {
        Job test = job;
        test.action = Action::test;
        auto tested = phase(run_once(targets, settings, test, transport, {}), "test");
        const bool all_ok = std::all_of(tested.begin(), tested.end(),
                                        [](const Result& r) { return r.outcome == Outcome::ok; });
        if (!all_ok) {
            for (std::size_t i = 0; i < tested.size(); ++i) {
                Result& r = tested[i];
                if (r.outcome == Outcome::ok) {
                    r.outcome = Outcome::skipped;
                    r.text = "password acceptable here, but not on every target: not changed";
                }
                if (on_result) {
                    on_result(i, r);
                }
            }
            return tested;
        }
    }
    if (job.before_change) {
        job.before_change();
    }
    const auto mark = [&](std::size_t i, const Result& r) {
        if (on_result) {
            Result copy = r;
            copy.phase = "change";
            on_result(i, copy);
        }
    };
    return phase(run_once(targets, settings, job, transport, mark), "change");
}

}  // namespace mpasswd
