// The C++ RAII wrapper of the messenger (bindings/cpp/osdkit.hpp): Messenger, Connection,
// Message; dispatchers as std::function, owned by the library; the event queue; zero-copy
// owned buffers; errors as exceptions.
#include "osdkit.hpp"
#include "test_util.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::uint16_t T_PING = 0x7201;
constexpr std::uint16_t T_PONG = 0x7202;
constexpr std::uint16_t T_FAST = 0x7203;

template <typename F>
std::string expect_error(int code, F f, const char* file, int line) {
    try {
        f();
    } catch (const osdkit::Error& e) {
        if (e.code() != code) {
            std::fprintf(stderr, "%s:%d: expected errno %d, got %d (%s)\n", file, line, code, e.code(), e.what());
            std::exit(1);
        }
        return e.what();
    }
    std::fprintf(stderr, "%s:%d: expected osdkit::Error(%d), nothing thrown\n", file, line, code);
    std::exit(1);
}
#define EXPECT_ERROR(code, ...) expect_error(code, [&] { __VA_ARGS__; }, __FILE__, __LINE__)

osdkit::Context make_ctx(const std::string& name, const std::string& dir) {
    osdkit::Context ctx(name);
    ctx.set_option("run_dir", dir);
    ctx.set_option("log_file", dir + "/" + name + ".log");
    ctx.set_option("admin_socket", "");
    ctx.start();
    return ctx;
}

std::string payload(int i) { return std::string(static_cast<std::size_t>(100 + i * 37), static_cast<char>('a' + i % 26)); }

// A buffer type that tells when the library destroys it.
struct Tracked {
    std::vector<std::uint8_t> bytes;
    std::shared_ptr<std::atomic<int>> destroyed;
    Tracked(std::size_t n, std::shared_ptr<std::atomic<int>> d) : bytes(n, 0x5a), destroyed(std::move(d)) {}
    Tracked(Tracked&& o) noexcept = default;
    ~Tracked() {
        if (destroyed) {
            ++*destroyed;
        }
    }
    const std::uint8_t* data() const { return bytes.data(); }
    std::size_t size() const { return bytes.size(); }
};

void test_callbacks(const std::string& dir) {
    osdkit::Context sctx = make_ctx("osd.0", dir);
    osdkit::Context cctx = make_ctx("client.1", dir);
    osdkit::Messenger server(sctx, "osd.0");
    osdkit::Messenger client(cctx, "client.1");

    // The dispatchers' std::functions are owned by the library: freed when the messenger is.
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    std::atomic<int> accepts{0}, pings{0}, fast{0}, passed{0};
    std::atomic<bool> wrong_thread{false};

    osdkit::Messenger::Dispatcher echo;
    echo.on_message = [token, &pings](osdkit::Message& m) {
        if (m.type() != T_PING) {
            return false;  // pass on
        }
        osdkit::Connection c = m.connection();
        m.set_type(T_PONG);
        c.send(std::move(m));  // the received message itself, no copy
        ++pings;
        return true;
    };
    echo.on_accept = [&accepts](const osdkit::Connection& c) {
        if (c.peer_type() == OSDKIT_ENTITY_TYPE_CLIENT) {
            ++accepts;
        }
    };
    echo.can_fast_dispatch = [](std::uint16_t t) { return t == T_FAST; };
    echo.on_fast_message = [&fast](osdkit::Message m) {
        if (m.front() == "fast") {
            ++fast;
        }
    };
    token.reset();
    server.add_dispatcher(std::move(echo));
    osdkit::Messenger::Dispatcher tail;
    tail.on_message = [&passed](osdkit::Message& m) {
        ++passed;
        osdkit::Message mine = std::move(m);  // kept by moving out, then freed here
        return true;
    };
    server.add_dispatcher(std::move(tail));
    CHECK(!watch.expired());
    server.bind("127.0.0.1:0");
    std::string addr = server.addr();
    CHECK(addr.rfind("v2:127.0.0.1:", 0) == 0);
    server.start();

    std::mutex mu;
    std::vector<std::string> fronts;
    std::vector<std::string> datas;
    tu_counter got;
    tu_counter_init(&got);
    osdkit::Messenger::Dispatcher rx;
    rx.on_message = [&](osdkit::Message& m) {
        char name[32] = {0};
        pthread_getname_np(pthread_self(), name, sizeof(name));
        if (std::string(name) != "ms_dispatch") {
            wrong_thread = true;
        }
        if (m.type() != T_PONG) {
            return false;
        }
        {
            std::lock_guard<std::mutex> lk(mu);
            fronts.emplace_back(m.front());
            datas.emplace_back(m.data());
        }
        tu_counter_add(&got, 1);
        return true;  // not moved out: the wrapper frees it
    };
    std::atomic<int> connects{0};
    rx.on_connect = [&connects](const osdkit::Connection&) { ++connects; };
    client.add_dispatcher(std::move(rx));
    client.start();

    osdkit::Connection c = client.connect("osd", addr);
    CHECK(c.peer_addr() == addr);
    CHECK_EQ(c.peer_type(), OSDKIT_ENTITY_TYPE_OSD);
    const int n = 20;
    for (int i = 0; i < n; i++) {
        osdkit::Message m(T_PING);
        m.set_front("front " + std::to_string(i)).set_data(payload(i)).set_tid(static_cast<std::uint64_t>(i));
        c.send(std::move(m));
        CHECK(!m);  // consumed
    }
    osdkit::Message other(0x7777);
    other.set_front("other");
    c.send(std::move(other));
    osdkit::Message f(T_FAST);
    f.set_front("fast");
    c.send(std::move(f));

    CHECK_EQ(tu_counter_wait(&got, n, 20.0), n);
    {
        std::lock_guard<std::mutex> lk(mu);
        for (int i = 0; i < n; i++) {
            CHECK(fronts[static_cast<std::size_t>(i)] == "front " + std::to_string(i));
            CHECK(datas[static_cast<std::size_t>(i)] == payload(i));
        }
    }
    double deadline = tu_now() + 20.0;
    while ((passed.load() < 1 || fast.load() < 1) && tu_now() < deadline) {
        tu_sleep_ms(5);
    }
    CHECK_EQ(passed.load(), 1);
    CHECK_EQ(fast.load(), 1);
    CHECK_EQ(pings.load(), n);
    CHECK_EQ(accepts.load(), 1);
    CHECK_EQ(connects.load(), 1);
    CHECK(!wrong_thread.load());
    CHECK(c.is_connected());
    CHECK(client.dump_connections().find(addr) != std::string::npos);

    // Zero copy from C++: an owned buffer, destroyed once by the library when done.
    auto destroyed = std::make_shared<std::atomic<int>>(0);
    {
        osdkit::Message m(T_PING);
        m.set_front("front 0");
        Tracked t(70000, destroyed);
        const std::uint8_t* where = t.data();
        m.set_data_owned(std::move(t));
        CHECK(reinterpret_cast<const std::uint8_t*>(m.data().data()) == where);
        CHECK_EQ(m.data().size(), 70000);
        osdkit::Message copy = m.clone();
        CHECK(copy.data().data() == m.data().data());
        c.send(std::move(m));
    }
    CHECK_EQ(tu_counter_wait(&got, n + 1, 20.0), n + 1);
    {
        std::lock_guard<std::mutex> lk(mu);
        CHECK(datas.back() == std::string(70000, '\x5a'));
    }

    // Mark down: later sends fail.
    c.mark_down();
    CHECK(!c.is_connected());
    osdkit::Message late(T_PING);
    CHECK(!c.try_send(std::move(late)));
    CHECK(!late);
    osdkit::Message late2(T_PING);
    EXPECT_ERROR(ENOTCONN, c.send(std::move(late2)));

    // Errors.
    EXPECT_ERROR(EINVAL, client.connect("bogus", addr));
    EXPECT_ERROR(EINVAL, client.connect("osd", "not an address"));
    EXPECT_ERROR(EINVAL, server.bind("127.0.0.1:0"));  // after start
    EXPECT_ERROR(EINVAL, client.set_policy("osd", 99));
    EXPECT_ERROR(ENOENT, osdkit::Message(1).connection());
    EXPECT_ERROR(EINVAL, client.enable_event_queue());  // after start
    osdkit::Message moved(1);
    osdkit::Message to = std::move(moved);
    EXPECT_ERROR(EINVAL, moved.type());  // NOLINT(bugprone-use-after-move): on purpose

    c = osdkit::Connection();
    client.shutdown();
    EXPECT_ERROR(ESHUTDOWN, client.start());
    {
        osdkit::Messenger gone = std::move(server);
    }  // freed here: the dispatchers' functions with it
    CHECK(watch.expired());
    CHECK_EQ(destroyed->load(), 1);
    tu_counter_destroy(&got);
    TU_PASS("c++ messenger: callbacks, zero copy, errors");
}

void test_event_queue(const std::string& dir) {
    osdkit::Context sctx = make_ctx("osd.2", dir);
    osdkit::Context cctx = make_ctx("client.3", dir);
    osdkit::Messenger server(sctx, "osd.2", 0);
    server.enable_event_queue();
    server.bind("127.0.0.1:0");
    server.start();
    std::string addr = server.addr();
    CHECK(addr.size() > 2 && addr.compare(addr.size() - 2, 2, "/0") == 0);

    int served = 0, accepted = 0;
    int end_code = 0;
    std::thread loop([&] {
        try {
            osdkit::Event ev;
            while (true) {
                if (!server.next_event(ev, -1)) {
                    continue;
                }
                if (ev.kind == OSDKIT_EVENT_ACCEPT) {
                    ++accepted;
                } else if (ev.kind == OSDKIT_EVENT_MESSAGE) {
                    ev.message.set_type(T_PONG);
                    ev.connection.send(std::move(ev.message));
                    ++served;
                }
            }
        } catch (const osdkit::Error& e) {
            end_code = e.code();
        }
    });

    osdkit::Messenger client(cctx, "client.3");
    client.enable_event_queue();
    client.start();
    osdkit::Connection c = client.connect("osd", addr);
    const int n = 10;
    for (int i = 0; i < n; i++) {
        osdkit::Message m(T_PING);
        m.set_front(std::to_string(i));
        c.send(std::move(m));
    }
    int got = 0, connects = 0;
    double deadline = tu_now() + 20.0;
    osdkit::Event ev;
    while ((got < n || connects < 1) && tu_now() < deadline) {
        if (!client.next_event(ev, 100)) {
            continue;
        }
        if (ev.kind == OSDKIT_EVENT_CONNECT) {
            CHECK(ev.connection.id() == c.id());
            ++connects;
        } else {
            CHECK_EQ(ev.kind, OSDKIT_EVENT_MESSAGE);
            CHECK(ev.message.type() == T_PONG);
            CHECK(ev.message.front() == std::to_string(got));
            ++got;
        }
    }
    CHECK_EQ(got, n);
    CHECK_EQ(connects, 1);
    CHECK(!client.next_event(ev, 10));

    server.shutdown();
    loop.join();
    CHECK_EQ(end_code, ESHUTDOWN);
    CHECK_EQ(served, n);
    CHECK_EQ(accepted, 1);
    client.shutdown();
    EXPECT_ERROR(ESHUTDOWN, client.next_event(ev, 0));
    TU_PASS("c++ messenger: event queue");
}

}  // namespace

int main() {
    char dir[256];
    tu_mkdtemp(dir);
    test_callbacks(dir);
    test_event_queue(dir);
    tu_rm_rf(dir);
    std::printf("all C++ messenger tests passed\n");
    return 0;
}
