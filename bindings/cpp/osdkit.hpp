// osdkit.hpp: header-only C++17 RAII wrapper over the osdkit C ABI (include/osdkit.h).
//
//   osdkit::Context ctx("osd.0");
//   ctx.set_option("run_dir", "/tmp/run");
//   ctx.register_command("echo name=msg,type=CephString", "echo a message",
//                        [](const std::string& args_json, std::string& reply) {
//                            reply = args_json;
//                            return 0;
//                        });
//   ctx.start();
//
//   osdkit::Messenger msgr(ctx, "osd.0");
//   osdkit::Messenger::Dispatcher d;
//   d.on_message = [](osdkit::Message& m) {       // on ms_dispatch
//       osdkit::Connection c = m.connection();
//       m.set_type(REPLY);
//       c.send(std::move(m));                      // the received message, not copied
//       return true;                               // handled
//   };
//   msgr.add_dispatcher(std::move(d));
//   msgr.bind("127.0.0.1:0");
//   msgr.start();
//
// Every failing call throws osdkit::Error (the positive errno in code(), osdkit_last_error()'s
// text in what()). Handles are move-only and released by their destructors. Callbacks given as
// std::function are owned by the library (released through the C API's drop callback) and run on
// the threads the C header documents for each. An exception escaping an admin command becomes an
// error reply (osdkit::Error keeps its errno, anything else is EIO); an exception escaping a timer
// or finisher callback calls std::terminate, as it would from any noexcept function.
#ifndef OSDKIT_HPP
#define OSDKIT_HPP

#include "osdkit.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osdkit {

// A failed osdkit call: code() is the positive errno, what() names the call and gives
// osdkit_last_error()'s message.
class Error : public std::runtime_error {
public:
    Error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

namespace detail {

// Throws Error for a negative return; passes other values through.
inline int check(int r, const char* fn) {
    if (r < 0) {
        const char* msg = osdkit_last_error();
        std::string text = fn;
        text += ": ";
        text += (msg != nullptr && *msg != '\0') ? msg : std::strerror(-r);
        throw Error(-r, text);
    }
    return r;
}

// A string the library allocated, freed with osdkit_string_free.
class LibString {
public:
    LibString() = default;
    ~LibString() { osdkit_string_free(p_); }
    LibString(const LibString&) = delete;
    LibString& operator=(const LibString&) = delete;
    char** out() noexcept { return &p_; }
    std::string str() const { return p_ != nullptr ? std::string(p_) : std::string(); }

private:
    char* p_ = nullptr;
};

// An owned handle of type T released by Free.
template <typename T, void (*Free)(T*)>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(T* p) noexcept : p_(p) {}
    ~Handle() { reset(); }
    Handle(Handle&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) {
            reset();
            p_ = o.p_;
            o.p_ = nullptr;
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    T* get() const noexcept { return p_; }
    T* release() noexcept {
        T* p = p_;
        p_ = nullptr;
        return p;
    }
    void reset() noexcept {
        if (p_ != nullptr) {
            Free(p_);
            p_ = nullptr;
        }
    }
    // Throws if empty (a moved-from wrapper).
    T* checked(const char* what) const {
        if (p_ == nullptr) {
            throw Error(EINVAL, std::string(what) + ": used after move");
        }
        return p_;
    }

private:
    T* p_ = nullptr;
};

template <typename F>
void drop_function(void* user) noexcept {
    delete static_cast<F*>(user);
}

}  // namespace detail

// The library's run-time version, e.g. "0.1.0".
inline std::string version() { return osdkit_version(); }

// Sends `json` to the admin socket at `path` and returns the reply payload.
inline std::string client_request(const std::string& path, const std::string& json) {
    detail::LibString reply;
    detail::check(osdkit_asok_client_request(path.c_str(), json.c_str(), reply.out()),
                  "osdkit_asok_client_request");
    return reply.str();
}

// A daemon context: config, log, perf counters and the admin socket.
class Context {
public:
    // An admin command: gets the request's named arguments as one JSON object, fills `reply`,
    // returns >= 0, or a negative errno (then `reply` is the error's reason). Runs on the
    // admin_socket thread (or the thread calling execute()).
    using CommandFn = std::function<int(const std::string& args_json, std::string& reply)>;

    // Context for entity `name` ("osd.0"), reading the ceph.conf-style file `conf` if not null.
    explicit Context(const std::string& name, const char* conf = nullptr) {
        osdkit_context* c = nullptr;
        detail::check(osdkit_context_new(name.c_str(), conf, &c), "osdkit_context_new");
        h_ = Handle(c);
    }

    void set_option(const std::string& key, const std::string& value) {
        detail::check(osdkit_context_set_option(native(), key.c_str(), value.c_str()),
                      "osdkit_context_set_option");
    }

    std::string get_option(const std::string& key) const {
        std::vector<char> buf(256);
        for (;;) {
            int r = osdkit_context_get_option(native(), key.c_str(), buf.data(), buf.size());
            if (r == -ERANGE && buf.size() < (std::size_t{1} << 24)) {
                buf.resize(buf.size() * 4);
                continue;
            }
            detail::check(r, "osdkit_context_get_option");
            return std::string(buf.data(), static_cast<std::size_t>(r));
        }
    }

    void start() { detail::check(osdkit_context_start(native()), "osdkit_context_start"); }
    void shutdown() { detail::check(osdkit_context_shutdown(native()), "osdkit_context_shutdown"); }

    // The admin socket path; empty when not started or disabled.
    std::string asok_path() const {
        const char* p = osdkit_context_asok_path(native());
        return p != nullptr ? std::string(p) : std::string();
    }

    // Registers an admin command; the library owns `fn` from here on and destroys it when the
    // command is unregistered or the context freed.
    void register_command(const std::string& descriptor, const std::string& help, CommandFn fn) {
        auto owned = std::make_unique<CommandFn>(std::move(fn));
        detail::check(osdkit_asok_register(native(), descriptor.c_str(), help.c_str(), &command_trampoline,
                                           owned.get(), &detail::drop_function<CommandFn>),
                      "osdkit_asok_register");
        owned.release();  // the library's now (drop_function deletes it)
    }

    void unregister_command(const std::string& descriptor) {
        detail::check(osdkit_asok_unregister(native(), descriptor.c_str()), "osdkit_asok_unregister");
    }

    // Runs an admin command in-process; `reply` gets the payload (an "ERROR: ..." text on
    // failure). Returns 0 or the command's negative errno; throws only for unusable input.
    int execute(const std::string& json, std::string& reply) {
        detail::LibString out;
        int r = osdkit_asok_execute(native(), json.c_str(), out.out());
        char* p = *out.out();
        if (r < 0 && p == nullptr) {
            detail::check(r, "osdkit_asok_execute");
        }
        reply = out.str();
        return r;
    }

    // Runs an admin command in-process and returns its reply; throws Error if it fails.
    std::string execute(const std::string& json) {
        std::string reply;
        int r = execute(json, reply);
        if (r < 0) {
            throw Error(-r, "osdkit_asok_execute: " + reply);
        }
        return reply;
    }

    // Writes one line to the context's log (subsys may be null).
    void log(const char* subsys, int level, const std::string& msg) const {
        detail::check(osdkit_log(native(), subsys, level, msg.c_str()), "osdkit_log");
    }

    osdkit_context* native() const { return h_.checked("osdkit::Context"); }
    osdkit_context* release() noexcept { return h_.release(); }

private:
    using Handle = detail::Handle<osdkit_context, osdkit_context_free>;

    static int command_trampoline(void* user, const char* prefix, const char* args_json, const char* format,
                                  osdkit_asok_reply* reply) noexcept {
        (void)prefix;
        (void)format;
        std::string out;
        int r;
        try {
            r = (*static_cast<CommandFn*>(user))(args_json != nullptr ? args_json : "", out);
        } catch (const Error& e) {
            out = e.what();
            r = -(e.code() > 0 ? e.code() : EIO);
        } catch (const std::exception& e) {
            out = e.what();
            r = -EIO;
        } catch (...) {
            out = "unknown C++ exception";
            r = -EIO;
        }
        if (osdkit_asok_reply_set(reply, out.data(), out.size()) < 0) {
            return -EINVAL;
        }
        return r;
    }

    Handle h_;
};

// A SafeTimer: one thread running events in deadline order.
class Timer {
public:
    using Fn = std::function<void()>;

    // `ctx` (optional) lists the timer's counters in its perf dump as safe_timer-<name>.
    explicit Timer(const std::string& name, Context* ctx = nullptr) {
        osdkit_timer* t = nullptr;
        detail::check(osdkit_timer_new(ctx != nullptr ? ctx->native() : nullptr, name.c_str(), &t),
                      "osdkit_timer_new");
        h_ = Handle(t);
    }

    // Runs `fn` on the timer thread after `seconds`; returns the event id.
    std::uint64_t add_after(double seconds, Fn fn) {
        auto owned = std::make_unique<Fn>(std::move(fn));
        std::uint64_t id = 0;
        int r = osdkit_timer_add_after(native(), seconds, &trampoline, owned.get(), &detail::drop_function<Fn>, &id);
        if (r == -ESHUTDOWN) {
            owned.release();  // the library already called drop (header contract)
        }
        detail::check(r, "osdkit_timer_add_after");
        owned.release();
        return id;
    }

    template <typename Rep, typename Period>
    std::uint64_t add_after(std::chrono::duration<Rep, Period> d, Fn fn) {
        return add_after(std::chrono::duration<double>(d).count(), std::move(fn));
    }

    // True if the event was pending (it will not run), false if it already ran or was cancelled.
    bool cancel(std::uint64_t id) {
        int r = osdkit_timer_cancel(native(), id);
        if (r == -ENOENT) {
            return false;
        }
        detail::check(r, "osdkit_timer_cancel");
        return true;
    }

    void cancel_all() { detail::check(osdkit_timer_cancel_all(native()), "osdkit_timer_cancel_all"); }
    int pending() const { return detail::check(osdkit_timer_pending(native()), "osdkit_timer_pending"); }
    void shutdown() { detail::check(osdkit_timer_shutdown(native()), "osdkit_timer_shutdown"); }

    osdkit_timer* native() const { return h_.checked("osdkit::Timer"); }

private:
    using Handle = detail::Handle<osdkit_timer, osdkit_timer_free>;

    static void trampoline(void* user) noexcept { (*static_cast<Fn*>(user))(); }

    Handle h_;
};

// A Finisher: one thread completing queued callbacks in FIFO order.
class Finisher {
public:
    using Fn = std::function<void(int r)>;

    explicit Finisher(const std::string& name, Context* ctx = nullptr) {
        osdkit_finisher* f = nullptr;
        detail::check(osdkit_finisher_new(ctx != nullptr ? ctx->native() : nullptr, name.c_str(), &f),
                      "osdkit_finisher_new");
        h_ = Handle(f);
    }

    // Queues fn(r) on the finisher thread.
    void queue(Fn fn, int r = 0) {
        auto owned = std::make_unique<Fn>(std::move(fn));
        detail::check(osdkit_finisher_queue(native(), &trampoline, owned.get(), &detail::drop_function<Fn>, r),
                      "osdkit_finisher_queue");
        owned.release();
    }

    void wait_for_empty() { detail::check(osdkit_finisher_wait_for_empty(native()), "osdkit_finisher_wait_for_empty"); }
    void stop() { detail::check(osdkit_finisher_stop(native()), "osdkit_finisher_stop"); }

    osdkit_finisher* native() const { return h_.checked("osdkit::Finisher"); }

private:
    using Handle = detail::Handle<osdkit_finisher, osdkit_finisher_free>;

    static void trampoline(void* user, int r) noexcept { (*static_cast<Fn*>(user))(r); }

    Handle h_;
};

// A Throttle: FIFO counting semaphore of `max` units (0 = unlimited).
class Throttle {
public:
    Throttle(const std::string& name, std::uint64_t max, Context* ctx = nullptr) {
        osdkit_throttle* t = nullptr;
        detail::check(osdkit_throttle_new(ctx != nullptr ? ctx->native() : nullptr, name.c_str(), max, &t),
                      "osdkit_throttle_new");
        h_ = Handle(t);
    }

    // Takes c units, waiting behind earlier waiters; true if it had to wait.
    bool get(std::uint64_t c = 1) { return detail::check(osdkit_throttle_get(native(), c), "osdkit_throttle_get") == 1; }

    // As get(), giving up after `seconds`: false on timeout (nothing taken).
    bool get_timeout(std::uint64_t c, double seconds) {
        int r = osdkit_throttle_get_timeout(native(), c, seconds);
        if (r == -ETIMEDOUT) {
            return false;
        }
        detail::check(r, "osdkit_throttle_get_timeout");
        return true;
    }

    // Takes c units only if no wait is needed and nobody waits.
    bool get_or_fail(std::uint64_t c = 1) {
        int r = osdkit_throttle_get_or_fail(native(), c);
        if (r == -EAGAIN) {
            return false;
        }
        detail::check(r, "osdkit_throttle_get_or_fail");
        return true;
    }

    void take(std::uint64_t c) { detail::check(osdkit_throttle_take(native(), c), "osdkit_throttle_take"); }
    void put(std::uint64_t c = 1) { detail::check(osdkit_throttle_put(native(), c), "osdkit_throttle_put"); }
    void reset_max(std::uint64_t m) { detail::check(osdkit_throttle_reset_max(native(), m), "osdkit_throttle_reset_max"); }
    std::int64_t current() const { return osdkit_throttle_current(native()); }
    std::int64_t max() const { return osdkit_throttle_max(native()); }
    // Callers blocked in get/get_timeout right now.
    int waiters() const { return detail::check(osdkit_throttle_waiters(native()), "osdkit_throttle_waiters"); }

    osdkit_throttle* native() const { return h_.checked("osdkit::Throttle"); }

private:
    using Handle = detail::Handle<osdkit_throttle, osdkit_throttle_free>;
    Handle h_;
};

// Defines a set of perf counters; consumed by PerfCounters' constructor.
class PerfCountersBuilder {
public:
    explicit PerfCountersBuilder(const std::string& name) {
        osdkit_perf_builder* b = nullptr;
        detail::check(osdkit_perf_builder_new(name.c_str(), &b), "osdkit_perf_builder_new");
        h_ = Handle(b);
    }

    // Adds a counter of `type` (OSDKIT_PERFCOUNTER_* flags); returns its index.
    std::uint32_t add(std::uint32_t type, const std::string& name, const std::string& desc,
                      const char* nick = nullptr, int prio = 0, int unit = OSDKIT_UNIT_NONE) {
        std::uint32_t idx = 0;
        detail::check(osdkit_perf_builder_add(h_.checked("osdkit::PerfCountersBuilder"), type, name.c_str(),
                                              desc.c_str(), nick, prio, unit, &idx),
                      "osdkit_perf_builder_add");
        return idx;
    }
    std::uint32_t add_u64(const std::string& name, const std::string& desc, int unit = OSDKIT_UNIT_NONE) {
        return add(OSDKIT_PERFCOUNTER_U64, name, desc, nullptr, 0, unit);
    }
    std::uint32_t add_u64_counter(const std::string& name, const std::string& desc, int unit = OSDKIT_UNIT_NONE) {
        return add(OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_COUNTER, name, desc, nullptr, 0, unit);
    }
    std::uint32_t add_u64_avg(const std::string& name, const std::string& desc, int unit = OSDKIT_UNIT_NONE) {
        return add(OSDKIT_PERFCOUNTER_U64 | OSDKIT_PERFCOUNTER_LONGRUNAVG, name, desc, nullptr, 0, unit);
    }
    std::uint32_t add_time(const std::string& name, const std::string& desc) {
        return add(OSDKIT_PERFCOUNTER_TIME, name, desc);
    }
    std::uint32_t add_time_avg(const std::string& name, const std::string& desc) {
        return add(OSDKIT_PERFCOUNTER_TIME | OSDKIT_PERFCOUNTER_LONGRUNAVG, name, desc);
    }

private:
    friend class PerfCounters;
    using Handle = detail::Handle<osdkit_perf_builder, osdkit_perf_builder_free>;
    Handle h_;
};

// Perf counters listed in a context's `perf dump` until destroyed. Safe to update from any
// thread.
class PerfCounters {
public:
    PerfCounters(Context& ctx, PerfCountersBuilder&& b) {
        osdkit_perf* p = nullptr;
        // osdkit_perf_create consumes the builder whatever the result.
        detail::check(osdkit_perf_create(ctx.native(), b.h_.release(), &p), "osdkit_perf_create");
        h_ = Handle(p);
    }

    void inc(std::uint32_t idx, std::uint64_t v = 1) { detail::check(osdkit_perf_inc(native(), idx, v), "osdkit_perf_inc"); }
    void dec(std::uint32_t idx, std::uint64_t v = 1) { detail::check(osdkit_perf_dec(native(), idx, v), "osdkit_perf_dec"); }
    void set(std::uint32_t idx, std::uint64_t v) { detail::check(osdkit_perf_set(native(), idx, v), "osdkit_perf_set"); }
    void tinc(std::uint32_t idx, std::chrono::nanoseconds d) {
        detail::check(osdkit_perf_tinc_ns(native(), idx, static_cast<std::uint64_t>(d.count())), "osdkit_perf_tinc_ns");
    }
    std::uint64_t get(std::uint32_t idx) const {
        std::uint64_t v = 0;
        detail::check(osdkit_perf_get(native(), idx, &v), "osdkit_perf_get");
        return v;
    }
    // (sum, count) of an average.
    std::pair<std::uint64_t, std::uint64_t> read_avg(std::uint32_t idx) const {
        std::uint64_t sum = 0, count = 0;
        detail::check(osdkit_perf_read_avg(native(), idx, &sum, &count), "osdkit_perf_read_avg");
        return {sum, count};
    }

    osdkit_perf* native() const { return h_.checked("osdkit::PerfCounters"); }

private:
    using Handle = detail::Handle<osdkit_perf, osdkit_perf_free>;
    Handle h_;
};

class Connection;

// A message: a type, a priority, a tid and three payload segments. Move-only; one thread at a
// time. Sending consumes it (the wrapper becomes empty).
class Message {
public:
    Message() noexcept = default;

    // A new message of `type`, priority OSDKIT_MSG_PRIO_DEFAULT, tid 0, empty segments.
    explicit Message(std::uint16_t type) {
        osdkit_message* m = nullptr;
        detail::check(osdkit_message_new(type, &m), "osdkit_message_new");
        h_ = Handle(m);
    }

    // Takes over a handle the C API handed out (an event's or a callback's message).
    static Message adopt(osdkit_message* m) noexcept {
        Message r;
        r.h_ = Handle(m);
        return r;
    }

    std::uint16_t type() const {
        return static_cast<std::uint16_t>(detail::check(osdkit_message_type(native()), "osdkit_message_type"));
    }
    std::uint16_t priority() const {
        return static_cast<std::uint16_t>(detail::check(osdkit_message_priority(native()), "osdkit_message_priority"));
    }
    std::uint64_t tid() const {
        std::uint64_t t = 0;
        detail::check(osdkit_message_tid(native(), &t), "osdkit_message_tid");
        return t;
    }

    Message& set_type(std::uint16_t t) {
        detail::check(osdkit_message_set_type(native(), t), "osdkit_message_set_type");
        return *this;
    }
    Message& set_priority(std::uint16_t p) {
        detail::check(osdkit_message_set_priority(native(), p), "osdkit_message_set_priority");
        return *this;
    }
    Message& set_tid(std::uint64_t t) {
        detail::check(osdkit_message_set_tid(native(), t), "osdkit_message_set_tid");
        return *this;
    }

    // Copying setters.
    Message& set_front(const void* p, std::size_t n) {
        detail::check(osdkit_message_set_front(native(), p, n), "osdkit_message_set_front");
        return *this;
    }
    Message& set_front(std::string_view s) { return set_front(s.data(), s.size()); }
    Message& set_middle(const void* p, std::size_t n) {
        detail::check(osdkit_message_set_middle(native(), p, n), "osdkit_message_set_middle");
        return *this;
    }
    Message& set_middle(std::string_view s) { return set_middle(s.data(), s.size()); }
    Message& set_data(const void* p, std::size_t n) {
        detail::check(osdkit_message_set_data(native(), p, n), "osdkit_message_set_data");
        return *this;
    }
    Message& set_data(std::string_view s) { return set_data(s.data(), s.size()); }

    // Zero copy: the data segment becomes `buf` itself (a std::vector<std::uint8_t>,
    // std::string, ... anything with data() and size() whose storage does not move with it);
    // the library owns it from here and destroys it when no message uses it any more, on
    // whatever thread drops the last use (see osdkit_data_free_cb).
    template <typename Buffer>
    Message& set_data_owned(Buffer buf) {
        auto owned = std::make_unique<Buffer>(std::move(buf));
        const void* p = owned->data();
        std::size_t n = owned->size() * sizeof(*owned->data());
        detail::check(osdkit_message_set_data_borrowed(native(), p, n, &detail::drop_function<Buffer>, owned.get()),
                      "osdkit_message_set_data_borrowed");
        owned.release();  // the library's now
        return *this;
    }

    // The segments, lent without copying: valid while this message holds them.
    std::string_view front() const { return segment(&osdkit_message_front, "osdkit_message_front"); }
    std::string_view middle() const { return segment(&osdkit_message_middle, "osdkit_message_middle"); }
    std::string_view data() const { return segment(&osdkit_message_data, "osdkit_message_data"); }

    // The connection a received message arrived on; throws Error(ENOENT) for a local message.
    Connection connection() const;

    // A new message sharing the segments (no copy), without the connection.
    Message clone() const {
        osdkit_message* m = nullptr;
        detail::check(osdkit_message_clone(native(), &m), "osdkit_message_clone");
        return adopt(m);
    }

    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    osdkit_message* native() const { return h_.checked("osdkit::Message"); }
    osdkit_message* get() const noexcept { return h_.get(); }
    osdkit_message* release() noexcept { return h_.release(); }

private:
    using Handle = detail::Handle<osdkit_message, osdkit_message_free>;
    using SegmentFn = int (*)(const osdkit_message*, const std::uint8_t**, std::size_t*);

    std::string_view segment(SegmentFn fn, const char* name) const {
        const std::uint8_t* p = nullptr;
        std::size_t n = 0;
        detail::check(fn(native(), &p, &n), name);
        return p != nullptr ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view();
    }

    Handle h_;
};

// A handle to one session with a peer; any thread. Copying the wrapper is explicit (clone()).
class Connection {
public:
    Connection() noexcept = default;

    static Connection adopt(osdkit_connection* c) noexcept {
        Connection r;
        r.h_ = Handle(c);
        return r;
    }
    // A new handle to a connection a callback lent.
    static Connection borrow(const osdkit_connection* c) {
        osdkit_connection* out = nullptr;
        detail::check(osdkit_connection_clone(c, &out), "osdkit_connection_clone");
        return adopt(out);
    }

    // Queues `m` (consumed, also when this throws). Throws Error(ENOTCONN) once the connection
    // is closed.
    void send(Message&& m) { detail::check(osdkit_connection_send(native(), m.release()), "osdkit_connection_send"); }
    // As send(), but false instead of throwing when the connection is closed.
    bool try_send(Message&& m) {
        int r = osdkit_connection_send(native(), m.release());
        if (r == -ENOTCONN) {
            return false;
        }
        detail::check(r, "osdkit_connection_send");
        return true;
    }
    void send_keepalive() { detail::check(osdkit_connection_send_keepalive(native()), "osdkit_connection_send_keepalive"); }
    void mark_down() { detail::check(osdkit_connection_mark_down(native()), "osdkit_connection_mark_down"); }
    bool is_connected() const {
        return detail::check(osdkit_connection_is_connected(native()), "osdkit_connection_is_connected") == 1;
    }
    std::int64_t id() const { return osdkit_connection_id(native()); }
    // OSDKIT_ENTITY_TYPE_*.
    int peer_type() const { return detail::check(osdkit_connection_peer_type(native()), "osdkit_connection_peer_type"); }
    std::string peer_addr() const {
        char buf[128];
        int n = detail::check(osdkit_connection_peer_addr(native(), buf, sizeof(buf)), "osdkit_connection_peer_addr");
        return std::string(buf, static_cast<std::size_t>(n));
    }
    Connection clone() const { return borrow(native()); }

    explicit operator bool() const noexcept { return h_.get() != nullptr; }
    osdkit_connection* native() const { return h_.checked("osdkit::Connection"); }

private:
    using Handle = detail::Handle<osdkit_connection, osdkit_connection_free>;
    Handle h_;
};

inline Connection Message::connection() const {
    osdkit_connection* c = nullptr;
    detail::check(osdkit_message_connection(native(), &c), "osdkit_message_connection");
    return Connection::adopt(c);
}

// One event of the pull-style queue (Messenger::next_event).
struct Event {
    int kind = OSDKIT_EVENT_NONE;  // OSDKIT_EVENT_*
    Message message;               // OSDKIT_EVENT_MESSAGE only
    Connection connection;         // empty for a message sent to self
};

// A messenger: msgr2 sessions, worker threads, the ms_dispatch thread, dispatchers, policies.
// The destructor shuts it down and waits for callbacks in flight (see osdkit_messenger_free).
class Messenger {
public:
    // Callbacks of one dispatcher; empty ones are not registered. The threads are those of
    // osdkit_dispatcher_ops: ms_dispatch for on_message and the connection events (one call at a
    // time), the receiving msgr-worker-N for can_fast_dispatch/on_fast_message. They must not
    // throw (an exception calls std::terminate).
    struct Dispatcher {
        // Return true when handled: the message is yours (move it out of the reference to keep
        // it; otherwise it is freed on return). Return false to pass it on to the next
        // dispatcher (then leave it where it is).
        std::function<bool(Message& m)> on_message;
        std::function<void(const Connection& c)> on_connect;
        std::function<void(const Connection& c)> on_accept;
        std::function<void(const Connection& c)> on_reset;
        std::function<void(const Connection& c)> on_remote_reset;
        std::function<void(const Connection& c)> on_refused;
        // Both or neither: fast dispatch inline on the worker thread; must not block.
        std::function<bool(std::uint16_t type)> can_fast_dispatch;
        std::function<void(Message m)> on_fast_message;
    };

    // A messenger for entity `name` using `ctx`'s configuration; nonce OSDKIT_NONCE_RANDOM or
    // 0..UINT32_MAX.
    Messenger(Context& ctx, const std::string& name, std::int64_t nonce = OSDKIT_NONCE_RANDOM) {
        osdkit_messenger* m = nullptr;
        detail::check(osdkit_messenger_new(ctx.native(), name.c_str(), nonce, &m), "osdkit_messenger_new");
        h_ = Handle(m);
    }

    // "127.0.0.1:0" (any free port), "v2:IP:PORT", "[::1]:0"; before start.
    void bind(const std::string& addr) { detail::check(osdkit_messenger_bind(native(), addr.c_str()), "osdkit_messenger_bind"); }
    void bind_port_range(const std::string& ip) {
        detail::check(osdkit_messenger_bind_port_range(native(), ip.c_str()), "osdkit_messenger_bind_port_range");
    }
    // The address peers connect to ("v2:127.0.0.1:6800/1234").
    std::string addr() const {
        char buf[128];
        int n = detail::check(osdkit_messenger_get_addr(native(), buf, sizeof(buf)), "osdkit_messenger_get_addr");
        return std::string(buf, static_cast<std::size_t>(n));
    }

    // OSDKIT_POLICY_* for peers of `peer_type` ("osd", "client", ...).
    void set_policy(const std::string& peer_type, int policy) {
        detail::check(osdkit_messenger_set_policy(native(), peer_type.c_str(), policy), "osdkit_messenger_set_policy");
    }
    void set_default_policy(int policy) {
        detail::check(osdkit_messenger_set_default_policy(native(), policy), "osdkit_messenger_set_default_policy");
    }

    // Adds a dispatcher (at the head of the chain if `head`); the library owns it from here.
    void add_dispatcher(Dispatcher d, bool head = false) {
        auto owned = std::make_unique<Dispatcher>(std::move(d));
        osdkit_dispatcher_ops ops;
        std::memset(&ops, 0, sizeof(ops));
        if (owned->on_message) ops.on_message = &on_message_tramp;
        if (owned->on_connect) ops.on_connect = &conn_tramp<&Dispatcher::on_connect>;
        if (owned->on_accept) ops.on_accept = &conn_tramp<&Dispatcher::on_accept>;
        if (owned->on_reset) ops.on_reset = &conn_tramp<&Dispatcher::on_reset>;
        if (owned->on_remote_reset) ops.on_remote_reset = &conn_tramp<&Dispatcher::on_remote_reset>;
        if (owned->on_refused) ops.on_refused = &conn_tramp<&Dispatcher::on_refused>;
        if (owned->can_fast_dispatch && owned->on_fast_message) {
            ops.can_fast_dispatch = &can_fast_tramp;
            ops.on_fast_message = &fast_tramp;
        }
        auto add = head ? &osdkit_messenger_add_dispatcher_head : &osdkit_messenger_add_dispatcher;
        int r = add(native(), &ops, owned.get(), &detail::drop_function<Dispatcher>);
        if (r == -ESHUTDOWN) {
            owned.release();  // the library already called drop (header contract)
        }
        detail::check(r, "osdkit_messenger_add_dispatcher");
        owned.release();
    }

    // Turns on the pull-style event queue; before start.
    void enable_event_queue() {
        detail::check(osdkit_messenger_enable_event_queue(native()), "osdkit_messenger_enable_event_queue");
    }

    // Waits up to `timeout_ms` (< 0: no limit) for the next event: true with `ev` filled, false
    // on timeout. Throws Error(ESHUTDOWN) once the messenger is shut down.
    bool next_event(Event& ev, int timeout_ms = -1) {
        osdkit_event e;
        std::memset(&e, 0, sizeof(e));
        int r = osdkit_messenger_next_event(native(), timeout_ms, &e);
        if (r == -ETIMEDOUT) {
            return false;
        }
        detail::check(r, "osdkit_messenger_next_event");
        ev.kind = e.kind;
        ev.message = Message::adopt(e.msg);
        ev.connection = Connection::adopt(e.conn);
        return true;
    }

    void start() { detail::check(osdkit_messenger_start(native()), "osdkit_messenger_start"); }

    // The session to `addr` of a `peer_type` peer (opened on first use).
    Connection connect(const std::string& peer_type, const std::string& addr) {
        osdkit_connection* c = nullptr;
        detail::check(osdkit_messenger_connect(native(), peer_type.c_str(), addr.c_str(), &c), "osdkit_messenger_connect");
        return Connection::adopt(c);
    }

    void send_to_self(Message&& m) {
        detail::check(osdkit_messenger_send_to_self(native(), m.release()), "osdkit_messenger_send_to_self");
    }
    void mark_down(const std::string& addr) {
        detail::check(osdkit_messenger_mark_down(native(), addr.c_str()), "osdkit_messenger_mark_down");
    }
    void mark_down_all() { detail::check(osdkit_messenger_mark_down_all(native()), "osdkit_messenger_mark_down_all"); }
    std::string dump_connections() const {
        detail::LibString s;
        detail::check(osdkit_messenger_dump_connections(native(), s.out()), "osdkit_messenger_dump_connections");
        return s.str();
    }
    void shutdown() { detail::check(osdkit_messenger_shutdown(native()), "osdkit_messenger_shutdown"); }

    osdkit_messenger* native() const { return h_.checked("osdkit::Messenger"); }

private:
    using Handle = detail::Handle<osdkit_messenger, osdkit_messenger_free>;

    static int on_message_tramp(void* user, osdkit_message* msg) noexcept {
        Message m = Message::adopt(msg);
        bool handled = static_cast<Dispatcher*>(user)->on_message(m);
        if (!handled && m.get() == msg) {
            m.release();  // still the library's: passed on
            return OSDKIT_DISPATCH_PASS;
        }
        // Handled (or moved out by the handler): ours; freed here unless the handler took it.
        return OSDKIT_DISPATCH_HANDLED;
    }

    template <std::function<void(const Connection&)> Dispatcher::*F>
    static void conn_tramp(void* user, const osdkit_connection* c) noexcept {
        Connection conn = Connection::borrow(c);
        (static_cast<Dispatcher*>(user)->*F)(conn);
    }

    static int can_fast_tramp(void* user, std::uint16_t type) noexcept {
        return static_cast<Dispatcher*>(user)->can_fast_dispatch(type) ? 1 : 0;
    }

    static void fast_tramp(void* user, osdkit_message* msg) noexcept {
        static_cast<Dispatcher*>(user)->on_fast_message(Message::adopt(msg));
    }

    Handle h_;
};

}  // namespace osdkit

#endif  // OSDKIT_HPP
