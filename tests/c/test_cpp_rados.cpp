// The C++ RAII wrappers of the object client (bindings/cpp/osdkit_rados.hpp) against a
// cluster hosted in this process: configuration, pools, object calls, compound ops, listing
// with a cursor, completions with std::function callbacks (run once, also after the
// Completion is gone), and errors as osdkit::Error with Ceph's errnos.
#include "osdkit_hosting.hpp"
#include "test_util.h"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

template <typename F>
void expect_errno(int code, F f, int line) {
    try {
        f();
    } catch (const osdkit::Error& e) {
        if (e.code() != code) {
            std::fprintf(stderr, "line %d: expected errno %d, got %d (%s)\n", line, code, e.code(), e.what());
            std::exit(1);
        }
        return;
    }
    std::fprintf(stderr, "line %d: expected osdkit::Error(%d), nothing thrown\n", line, code);
    std::exit(1);
}
#define EXPECT_ERRNO(code, ...) expect_errno(code, [&] { __VA_ARGS__; }, __LINE__)

}  // namespace

int main() {
    char dir[256];
    tu_mkdtemp(dir);
    {
        osdkit::Cluster cl(dir, 3);
        CHECK_EQ(cl.num_osds(), 3);
        EXPECT_ERRNO(EINVAL, osdkit::Rados("osd.1"));
        {
            osdkit::Rados unconnected;
            EXPECT_ERRNO(ENOTCONN, unconnected.open_ioctx("data"));
            EXPECT_ERRNO(ENOENT, unconnected.conf_set("no_such_option", "1"));
            unconnected.conf_set("rados_osd_op_timeout", "30");
            CHECK(unconnected.conf_get("rados_osd_op_timeout").rfind("30", 0) == 0);
        }
        osdkit::Rados rados = cl.client();
        std::vector<std::string> pools = rados.pool_list();
        CHECK_EQ(pools.size(), 1);
        CHECK(pools[0] == "data");
        rados.pool_create("cxx");
        EXPECT_ERRNO(EEXIST, rados.pool_create("cxx"));
        CHECK(rados.pool_lookup("cxx") > 0);
        CHECK_EQ(rados.pool_list().size(), 2);
        EXPECT_ERRNO(ENOENT, rados.open_ioctx("nopool"));

        osdkit::IoCtx io = rados.open_ioctx("cxx");
        CHECK_EQ(io.pool_id(), rados.pool_lookup("cxx"));
        io.write_full("a", "hello world");
        CHECK(io.read("a") == "hello world");
        CHECK(io.read("a", 5, 6) == "world");
        io.write("a", "W", 6);
        io.append("a", "!");
        CHECK(io.read("a") == "hello World!");
        io.trunc("a", 5);
        osdkit::ObjectStat st = io.stat("a");
        CHECK_EQ(st.size, 5);
        CHECK(st.mtime > std::chrono::system_clock::now() - std::chrono::minutes(5));
        EXPECT_ERRNO(ENOENT, io.read("missing"));
        EXPECT_ERRNO(ENOENT, io.stat("missing"));

        std::string big(1000, 'x');
        io.setxattr("a", "big", big);  // longer than the first buffer getxattr tries
        io.setxattr("a", "small", "s");
        CHECK(io.getxattr("a", "big") == big);
        EXPECT_ERRNO(ENODATA, io.getxattr("a", "none"));
        auto xs = io.getxattrs("a");
        CHECK_EQ(xs.size(), 2);
        CHECK(xs["small"] == "s");
        io.rmxattr("a", "small");
        CHECK_EQ(io.getxattrs("a").size(), 1);

        io.omap_set("a", {{"k1", "v1"}, {"k2", std::string("v\0two", 5)}, {"k3", "v3"}});
        auto om = io.omap_get_vals("a", "k1", 10);
        CHECK_EQ(om.size(), 2);
        CHECK(om["k2"] == std::string("v\0two", 5));
        CHECK_EQ(io.omap_get_vals_by_keys("a", {"k3", "zz"}).size(), 1);
        io.omap_rm_keys("a", {"k1", "k3"});
        CHECK_EQ(io.omap_get_vals("a").size(), 1);

        // Compound ops: a failing guard applies nothing; a good one applies all.
        osdkit::WriteOp bad;
        bad.write_full("clobbered").cmpxattr("big", OSDKIT_CMPXATTR_OP_EQ, "other");
        EXPECT_ERRNO(ECANCELED, io.operate("a", bad));
        CHECK(io.read("a") == "hello");
        EXPECT_ERRNO(EINVAL, bad.cmpxattr("big", 0, "x"));
        osdkit::WriteOp good;
        good.create(true).write_full("v1").setxattr("owner", "me").omap_set({{"m", "n"}});
        io.operate("b", good);
        EXPECT_ERRNO(EEXIST, io.operate("b", good));
        osdkit::ReadOp rd;
        char buf[16];
        std::size_t got = 0;
        int prval = 1;
        std::uint64_t size = 0;
        osdkit_kv_iter* xattrs = nullptr;
        rd.read(0, buf, sizeof(buf), &got, &prval).stat(&size, nullptr).getxattrs(&xattrs);
        io.operate("b", rd);
        CHECK_EQ(got, 2);
        CHECK_EQ(prval, 0);
        CHECK_EQ(size, 2);
        CHECK(std::string(buf, got) == "v1");
        auto bx = osdkit::ReadOp::pairs(xattrs);
        CHECK(bx["owner"] == "me");

        // Listing, whole and resumed from a cursor.
        for (int i = 0; i < 25; i++) {
            io.write_full("l" + std::to_string(i), "x");
        }
        std::vector<std::string> all = io.list_objects();
        CHECK_EQ(all.size(), 27);  // a, b and the 25
        osdkit::IoCtx::Lister l = io.list();
        std::string name;
        std::set<std::string> first;
        for (int i = 0; i < 10; i++) {
            CHECK(l.next(name));
            first.insert(name);
        }
        std::string cur = l.cursor();
        osdkit::IoCtx::Lister l2 = io.list();
        l2.seek(cur);
        std::set<std::string> rest;
        while (l2.next(name)) {
            CHECK(first.count(name) == 0);
            rest.insert(name);
        }
        CHECK_EQ(first.size() + rest.size(), 27);

        // Completions: a callback per call, run once on a library thread, even when the
        // Completion object is gone before it runs.
        std::atomic<int> calls{0}, failures{0};
        for (int i = 0; i < 16; i++) {
            osdkit::Completion c([&](int r) {
                calls++;
                if (r != 0) {
                    failures++;
                }
            });
            io.aio_append("aio", c, "0123456789");
        }
        for (int i = 0; i < 3000 && calls.load() < 16; i++) {
            tu_sleep_ms(10);
        }
        CHECK_EQ(calls.load(), 16);
        CHECK_EQ(failures.load(), 0);
        CHECK_EQ(io.stat("aio").size, 160);
        osdkit::Completion rc;
        char rbuf[8];
        io.aio_read("aio", rc, rbuf, sizeof(rbuf), 5);
        CHECK(rc.wait_for(std::chrono::seconds(30)));
        CHECK(rc.is_complete());
        CHECK_EQ(rc.return_value(), 8);
        CHECK(std::string(rbuf, 8) == "56789012");
        EXPECT_ERRNO(EINVAL, io.aio_read("aio", rc, rbuf, sizeof(rbuf), 0));  // used already
        osdkit::Completion missing;
        io.aio_remove("nope", missing);
        missing.wait();
        CHECK_EQ(missing.return_value(), -ENOENT);
        osdkit::Completion never([](int) { std::abort(); });  // not given to a call: never runs
        osdkit::Completion wc;
        osdkit::WriteOp w2;
        w2.remove();
        io.aio_operate("b", wc, w2);
        wc.wait();
        CHECK_EQ(wc.return_value(), 0);

        rados.pool_delete("cxx");
        EXPECT_ERRNO(ENOENT, rados.pool_lookup("cxx"));
    }
    tu_rm_rf(dir);
    std::printf("test_cpp_rados: ok\n");
    return 0;
}
