// The C++ wrappers of hosted daemons (bindings/cpp/osdkit_hosting.hpp): a monitor and two
// OSDs from one conf file, std::function callbacks, states, errors as osdkit::Error, a client
// reading the same conf, and the destructors stopping what still runs.
#include "osdkit_hosting.hpp"
#include "test_util.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>
#include <netinet/in.h>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace {

int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t l = sizeof(a);
    CHECK_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

}  // namespace

int main() {
    char dir[256];
    tu_mkdtemp(dir);
    std::string conf = std::string(dir) + "/osdkit.conf";
    FILE* f = std::fopen(conf.c_str(), "w");
    CHECK(f != nullptr);
    std::fprintf(f,
                 "[global]\nmon_host = v2:127.0.0.1:%d\nrun_dir = %s/run\nlog_file =\n"
                 "[mon]\nmon_data = %s/$name\n[osd]\nosd_objectstore = mem\n",
                 free_port(), dir, dir);
    std::fclose(f);
    std::atomic<int> active{0};
    {
        osdkit::HostedMonitor mon({"a", conf, "", {}, [&] { active++; }, nullptr});
        CHECK(mon.state() == osdkit::DaemonState::New);
        mon.start();
        mon.wait_active(std::chrono::seconds(30));
        CHECK_EQ(active.load(), 1);
        osdkit::HostedOsd osd0({"0", conf, "", {{"osd_op_num_shards", "2"}}, [&] { active++; }, nullptr});
        osdkit::HostedOsd osd1({"1", conf, "", {}, [&] { active++; }, nullptr});
        try {
            osdkit::HostedOsd dup({"0", conf, "", {}, nullptr, nullptr});
            CHECK(!"a second osd.0 was made");
        } catch (const osdkit::Error& e) {
            CHECK_EQ(e.code(), EEXIST);
        }
        // As in Ceph, an OSD must exist in the map before it boots.
        try {
            osd0.start();
            CHECK(!"osd.0 booted before osd create");
        } catch (const osdkit::Error& e) {
            CHECK_EQ(e.code(), ENOENT);
        }
        CHECK(mon.command(R"({"prefix": "osd create", "id": 0})") == "0");
        CHECK(mon.command(R"({"prefix": "osd create"})") == "1");
        try {
            mon.command(R"({"prefix": "no such command"})");
            CHECK(!"a bad command succeeded");
        } catch (const osdkit::Error& e) {
            CHECK_EQ(e.code(), EINVAL);
            CHECK(std::string(e.what()).find("unknown command") != std::string::npos);
        }
        osd0.start();
        osd1.start();
        osd0.wait_active(std::chrono::seconds(30));
        osd1.wait_active(std::chrono::seconds(30));
        CHECK_EQ(active.load(), 3);
        CHECK(osd1.asok_path() == std::string(dir) + "/run/ceph-osd.1.asok");
        CHECK(osd0.addr().rfind("v2:127.0.0.1:", 0) == 0);

        osdkit::Rados rados;
        rados.conf_read_file(conf);
        rados.connect();
        rados.pool_create("p");
        osdkit::IoCtx io = rados.open_ioctx("p");
        io.write_full("obj", "from c++");
        int mine = 0;
        for (int i = 0; i < 30; i++) {
            std::string oid = "direct-" + std::to_string(i);
            try {
                osd0.write("p", oid, oid);
            } catch (const osdkit::Error& e) {
                CHECK_EQ(e.code(), ENXIO);
                continue;
            }
            CHECK(io.read(oid) == oid);
            CHECK(osd0.read("p", oid) == oid);
            osd0.truncate("p", oid, 2);
            CHECK(osd0.read("p", oid) == oid.substr(0, 2));
            mine++;
        }
        CHECK(mine > 0 && mine < 30);
        // The same without waiting: completions on the OSD's threads.
        std::mutex mu;
        std::condition_variable cv;
        std::vector<std::string> done;
        auto note = [&](std::string s) {
            std::lock_guard<std::mutex> g(mu);
            done.push_back(std::move(s));
            cv.notify_all();
        };
        auto wait_n = [&](std::size_t n) {
            std::unique_lock<std::mutex> g(mu);
            CHECK(cv.wait_for(g, std::chrono::seconds(30), [&] { return done.size() >= n; }));
        };
        std::string target;
        for (int i = 0; i < 30 && target.empty(); i++) {
            std::string oid = "direct-" + std::to_string(i);
            try {
                osd0.read("p", oid);
                target = oid;
            } catch (const osdkit::Error&) {
            }
        }
        CHECK(!target.empty());
        osd0.aio_write("p", target, "async", 0, [&](int r) { note("w" + std::to_string(r)); });
        wait_n(1);
        osd0.aio_read("p", target, 16, 0, [&](int r, std::string d) { note("r" + std::to_string(r) + d); });
        wait_n(2);
        osd0.aio_truncate("p", target, 1, [&](int r) { note("t" + std::to_string(r)); });
        wait_n(3);
        osd0.aio_read("p", target, 0, 0, [&](int r, std::string d) { note("z" + std::to_string(r) + d); });
        wait_n(4);
        CHECK(done[0] == "w0");
        CHECK(done[1] == "r0async");
        CHECK(done[2] == "t0");
        CHECK(done[3] == "z0");
        CHECK(io.read(target) == "a");
        osd1.shutdown();
        CHECK(osd1.join(std::chrono::seconds(30)) == osdkit::DaemonState::Stopped);
        osd1.start();
        osd1.wait_active(std::chrono::seconds(30));
        CHECK(io.read("obj") == "from c++");

        osdkit::HostedOsd bad({"2", conf, "", {{"public_addr", "nowhere"}}, nullptr, nullptr});
        try {
            bad.start();
            CHECK(!"a bad public_addr started");
        } catch (const osdkit::Error& e) {
            CHECK_EQ(e.code(), EINVAL);
        }
        std::string why;
        CHECK(bad.state(&why) == osdkit::DaemonState::Failed);
        CHECK(why.find("public_addr") != std::string::npos);
        CHECK_EQ(osdkit::signal_all(SIGHUP), 3);
        // osd0, osd1 and the monitor are stopped by their destructors.
    }
    tu_rm_rf(dir);
    std::printf("test_cpp_hosting: ok\n");
    return 0;
}
