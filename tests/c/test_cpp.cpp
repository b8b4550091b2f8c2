// The C++ RAII wrapper (bindings/cpp/osdkit.hpp): exceptions, ownership of std::function
// callbacks, move-only handles, and each wrapped area end to end.
#include "osdkit.hpp"
#include "test_util.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace {

// Runs `f`, which must throw osdkit::Error with `code`; returns its message.
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

std::string json_msg(const std::string& args) {
    const std::string key = "\"msg\":\"";
    auto p = args.find(key);
    if (p == std::string::npos) {
        return {};
    }
    auto e = args.find('"', p + key.size());
    return args.substr(p + key.size(), e - p - key.size());
}

void test_context_and_errors(const std::string& dir) {
    CHECK(osdkit::version() == osdkit_version());
    EXPECT_ERROR(EINVAL, osdkit::Context bad("no dot in name"));

    osdkit::Context ctx("osd.4");
    // A bad option value throws, with the library's reason in what().
    std::string msg = EXPECT_ERROR(EINVAL, ctx.set_option("heartbeat_interval", "soon"));
    CHECK_CONTAINS(msg.c_str(), "osdkit_context_set_option");
    CHECK(msg.size() > std::strlen("osdkit_context_set_option: "));
    msg = EXPECT_ERROR(ENOENT, ctx.set_option("no_such_option", "1"));
    CHECK_CONTAINS(msg.c_str(), "no_such_option");
    EXPECT_ERROR(ENOENT, ctx.get_option("no_such_option"));

    ctx.set_option("run_dir", dir);
    ctx.set_option("log_file", dir + "/osd.4.log");
    CHECK(ctx.get_option("run_dir") == dir);
    // get_option grows its buffer for long values.
    std::string long_dir = dir + "/" + std::string(600, 'x');
    ctx.set_option("run_dir", long_dir);
    CHECK(ctx.get_option("run_dir") == long_dir);
    ctx.set_option("run_dir", dir);
    CHECK(ctx.get_option("admin_socket") == dir + "/ceph-osd.4.asok");
    CHECK(ctx.asok_path().empty());

    // Commands: the library owns the std::function and destroys it at unregister.
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    std::atomic<int> calls{0};
    ctx.register_command("echo name=msg,type=CephString", "echo a message",
                         [token, &calls](const std::string& args, std::string& reply) {
                             ++calls;
                             reply = json_msg(args);
                             return 0;
                         });
    token.reset();
    CHECK(!watch.expired());
    // A duplicate throws EEXIST; its function is destroyed by the wrapper (ASan checks leaks).
    auto dup_token = std::make_shared<int>(0);
    std::weak_ptr<int> dup_watch = dup_token;
    EXPECT_ERROR(EEXIST, ctx.register_command("echo name=msg,type=CephString", "",
                                              [dup_token](const std::string&, std::string&) { return 0; }));
    dup_token.reset();
    CHECK(dup_watch.expired());

    ctx.register_command("throws_errno", "", [](const std::string&, std::string&) -> int {
        throw osdkit::Error(ENOENT, "nothing here");
    });
    ctx.register_command("throws_other", "", [](const std::string&, std::string&) -> int {
        throw std::runtime_error("surprise");
    });
    ctx.register_command("returns_errno", "", [](const std::string&, std::string& reply) {
        reply = "busy, try later";
        return -EBUSY;
    });

    ctx.start();
    std::string path = ctx.asok_path();
    CHECK(!path.empty());
    struct stat st;
    CHECK_EQ(stat(path.c_str(), &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);

    CHECK(osdkit::client_request(path, R"({"prefix":"echo","msg":"hello"})") == "hello");
    CHECK_EQ(calls.load(), 1);
    std::string r = osdkit::client_request(path, R"({"prefix":"throws_errno"})");
    CHECK(r.rfind("ERROR: (2) No such file or directory", 0) == 0);
    CHECK_CONTAINS(r.c_str(), "nothing here");
    r = osdkit::client_request(path, R"({"prefix":"throws_other"})");
    CHECK(r.rfind("ERROR: (5) Input/output error", 0) == 0);
    CHECK_CONTAINS(r.c_str(), "surprise");
    r = osdkit::client_request(path, R"({"prefix":"returns_errno"})");
    CHECK(r.rfind("ERROR: (16) Device or resource busy", 0) == 0);
    CHECK_CONTAINS(r.c_str(), "busy, try later");
    EXPECT_ERROR(ENOENT, osdkit::client_request(dir + "/nothing.asok", R"({"prefix":"0"})"));

    // In-process.
    CHECK(ctx.execute(R"({"prefix":"echo","msg":"inproc"})") == "inproc");
    std::string reply;
    CHECK_EQ(ctx.execute(R"({"prefix":"returns_errno"})", reply), -EBUSY);
    CHECK(reply.rfind("ERROR: (16)", 0) == 0);
    msg = EXPECT_ERROR(EBUSY, ctx.execute(R"({"prefix":"returns_errno"})"));
    CHECK_CONTAINS(msg.c_str(), "busy, try later");
    EXPECT_ERROR(EINVAL, ctx.execute("not json"));
    CHECK_EQ(calls.load(), 2);

    ctx.unregister_command("echo name=msg,type=CephString");
    CHECK(watch.expired());
    EXPECT_ERROR(ENOENT, ctx.unregister_command("echo name=msg,type=CephString"));
    ctx.log("osd", 0, "from C++");

    // Move-only: the moved-from wrapper refuses to be used.
    osdkit::Context moved = std::move(ctx);
    CHECK(moved.asok_path() == path);
    EXPECT_ERROR(EINVAL, ctx.start());  // NOLINT(bugprone-use-after-move): on purpose
    osdkit::Context other("client.admin");
    other = std::move(moved);
    CHECK(other.asok_path() == path);
    TU_PASS("context, errors, commands");
}

void test_timer_finisher() {
    osdkit::Timer timer("cpp");
    std::mutex mu;
    std::vector<int> order;
    tu_counter done;
    tu_counter_init(&done);
    auto record = [&](int v) {
        {
            std::lock_guard<std::mutex> g(mu);
            order.push_back(v);
        }
        tu_counter_add(&done, 1);
    };
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> watch = token;
    std::uint64_t cancelled = timer.add_after(30.0, [token] {});
    token.reset();
    // A second between the deadlines, and a second before the first: none fires before the
    // pending check, and 3 (added when 1 runs) is due well before 2.
    timer.add_after(2.0, [&] { record(2); });
    timer.add_after(std::chrono::milliseconds(1000), [&] {
        record(1);
        // Back into the library from the timer thread.
        timer.add_after(0.0, [&] { record(3); });
    });
    CHECK_EQ(timer.pending(), 3);
    CHECK(timer.cancel(cancelled));
    CHECK(watch.expired());  // cancelled: its function is gone
    CHECK(!timer.cancel(cancelled));
    CHECK_EQ(tu_counter_wait(&done, 3, 10.0), 3);
    CHECK(order == std::vector<int>({1, 3, 2}));  // 3 (0 s, added at 1 s) beats 2 (2 s)
    EXPECT_ERROR(EINVAL, timer.add_after(-1.0, [] {}));
    timer.shutdown();
    EXPECT_ERROR(ESHUTDOWN, timer.add_after(0.0, [] {}));

    osdkit::Finisher fin("cpp");
    std::vector<int> rs;
    for (int i = 0; i < 10; i++) {
        fin.queue([&rs](int r) { rs.push_back(r); }, -i);
    }
    fin.wait_for_empty();
    CHECK_EQ(rs.size(), 10);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(rs[static_cast<std::size_t>(i)], -i);
    }
    osdkit::Finisher fin2 = std::move(fin);
    fin2.queue([&rs](int) { rs.push_back(99); });
    fin2.wait_for_empty();
    CHECK_EQ(rs.back(), 99);
    tu_counter_destroy(&done);
    TU_PASS("timer and finisher");
}

void test_throttle_perf(const std::string& dir) {
    osdkit::Throttle t("cpp", 2);
    CHECK(!t.get(2));
    CHECK(!t.get_or_fail(1));
    CHECK(!t.get_timeout(1, 0.05));
    CHECK_EQ(t.waiters(), 0);
    std::thread waiter([&] { CHECK(t.get(1)); });
    while (t.waiters() == 0) {
        tu_sleep_ms(1);
    }
    CHECK_EQ(t.waiters(), 1);
    // A queued waiter makes get_or_fail(0) refuse to jump the line.
    CHECK(!t.get_or_fail(0));
    t.put(2);
    waiter.join();
    CHECK_EQ(t.waiters(), 0);
    CHECK_EQ(t.current(), 1);
    t.put(1);
    CHECK_EQ(t.max(), 2);
    t.reset_max(0);
    t.take(100);
    CHECK_EQ(t.current(), 100);
    t.put(100);

    osdkit::Context ctx("osd.6");
    ctx.set_option("run_dir", dir);
    ctx.set_option("log_file", dir + "/osd.6.log");
    osdkit::PerfCountersBuilder b("cppperf");
    auto ops = b.add_u64_counter("ops", "operations");
    auto lat = b.add_time_avg("lat", "latency");
    EXPECT_ERROR(EINVAL, b.add(0x40, "bad", "bad"));
    osdkit::PerfCounters pc(ctx, std::move(b));
    std::thread a([&] {
        for (int i = 0; i < 500; i++) {
            pc.inc(ops);
        }
    });
    for (int i = 0; i < 500; i++) {
        pc.inc(ops);
    }
    a.join();
    pc.tinc(lat, std::chrono::milliseconds(3));
    CHECK_EQ(pc.get(ops), 1000);
    CHECK(pc.read_avg(lat) == std::make_pair(std::uint64_t{3000000}, std::uint64_t{1}));
    EXPECT_ERROR(EINVAL, pc.inc(57));
    std::string dump = ctx.execute(R"({"prefix":"perf dump","format":"json"})");
    CHECK_CONTAINS(dump.c_str(), "\"cppperf\":{\"ops\":1000,\"lat\":{\"avgcount\":1,\"sum\":0.003000000");
    TU_PASS("throttle and perf counters");
}

}  // namespace

int main() {
    char dir[256];
    tu_mkdtemp(dir);
    test_context_and_errors(dir);
    test_timer_finisher();
    test_throttle_perf(dir);
    tu_rm_rf(dir);
    return 0;
}
