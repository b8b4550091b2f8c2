// osdkit_rados.hpp: header-only C++17 RAII wrappers over osdkit's librados-shaped object
// client (osdkit_rados_*, osdkit_ioctx_*, op builders, completions). Daemons hosted in the
// process are in osdkit_hosting.hpp.
//
//   osdkit::Rados rados("client.admin");
//   rados.conf_read_file("/path/to/osdkit.conf");   // or conf_set("mon_host", ...)
//   rados.connect();
//   osdkit::IoCtx io = rados.open_ioctx("data");
//   io.write_full("greeting", "hello");
//   std::string s = io.read("greeting");             // "hello"
//
//   osdkit::WriteOp op;                               // atomic: all or none
//   op.create(true).write_full("v1").setxattr("owner", "me");
//   io.operate("obj", op);
//
//   osdkit::Completion c([](int r) { /* on a msgr-worker thread */ });
//   io.aio_write_full("obj", c, "v2");
//   c.wait();
//
// Failing calls throw osdkit::Error (see osdkit.hpp). Handles are move-only; an IoCtx may
// outlive its Rados (its calls then fail with ESHUTDOWN).
#ifndef OSDKIT_RADOS_HPP
#define OSDKIT_RADOS_HPP

#include "osdkit.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osdkit {

// Size and modification time of an object.
struct ObjectStat {
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point mtime;
};

namespace detail {

// Key/value pairs from the library (xattrs, omap), copied into a map.
inline std::map<std::string, std::string> drain(osdkit_kv_iter* it) {
    Handle<osdkit_kv_iter, osdkit_kv_iter_end> h(it);
    std::map<std::string, std::string> m;
    for (;;) {
        const char* k = nullptr;
        const char* v = nullptr;
        std::size_t len = 0;
        check(osdkit_kv_iter_next(h.get(), &k, &v, &len), "osdkit_kv_iter_next");
        if (k == nullptr) {
            return m;
        }
        m.emplace(k, std::string(v, len));
    }
}

// Three parallel C arrays over a map's entries, alive as long as the map.
struct OmapArgs {
    std::vector<const char*> keys;
    std::vector<const char*> vals;
    std::vector<std::size_t> lens;
    explicit OmapArgs(const std::map<std::string, std::string>& m) {
        for (const auto& [k, v] : m) {
            keys.push_back(k.c_str());
            vals.push_back(v.data());
            lens.push_back(v.size());
        }
    }
};

inline std::vector<const char*> c_strs(const std::vector<std::string>& v) {
    std::vector<const char*> out;
    out.reserve(v.size());
    for (const auto& s : v) {
        out.push_back(s.c_str());
    }
    return out;
}

inline ObjectStat make_stat(std::uint64_t size, std::int64_t sec, std::uint32_t nsec) {
    ObjectStat st;
    st.size = size;
    st.mtime = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(sec) +
                                                                        std::chrono::nanoseconds(nsec)));
    return st;
}

}  // namespace detail

// The result of one async call (osdkit_completion). The callback, if given, runs once on a
// library thread when the call completes (see osdkit_callback_t for which and its rules) and
// gets the return value. One completion per call. Destroying it before the call completes is
// allowed: the library keeps its own reference, and the callback still runs.
class Completion {
public:
    Completion() : Completion(nullptr) {}
    explicit Completion(std::function<void(int)> cb) {
        osdkit_completion* c = nullptr;
        if (cb) {
            fn_ = new std::function<void(int)>(std::move(cb));
        }
        int r = osdkit_completion_create(fn_ != nullptr ? &tramp : nullptr, fn_, &c);
        if (r < 0) {
            delete fn_;
            detail::check(r, "osdkit_completion_create");
        }
        h_ = Handle(c);
    }
    ~Completion() {
        if (!armed_) {
            delete fn_;  // never given to a call: the callback will not run
        }
    }
    Completion(Completion&& o) noexcept : h_(std::move(o.h_)), fn_(o.fn_), armed_(o.armed_) { o.fn_ = nullptr; }
    Completion& operator=(Completion&&) = delete;

    // Waits until the call completed and the callback returned.
    void wait() { detail::check(osdkit_completion_wait(get()), "osdkit_completion_wait"); }
    // As wait(), false if not complete after `timeout`.
    bool wait_for(std::chrono::milliseconds timeout) {
        int r = osdkit_completion_wait_timeout(get(), static_cast<std::uint32_t>(timeout.count()));
        if (r == -ETIMEDOUT) {
            return false;
        }
        detail::check(r, "osdkit_completion_wait_timeout");
        return true;
    }
    bool is_complete() { return detail::check(osdkit_completion_is_complete(get()), "osdkit_completion_is_complete") == 1; }
    // 0, a negative errno, or the bytes read; -EINPROGRESS before completion. Does not throw.
    int return_value() { return osdkit_completion_get_return_value(get()); }

    osdkit_completion* get() const { return h_.checked("Completion"); }
    // For the IoCtx calls: the completion now belongs to a call (only after it was accepted).
    void mark_armed() noexcept { armed_ = true; }

private:
    using Handle = detail::Handle<osdkit_completion, osdkit_completion_release>;
    static void tramp(osdkit_completion* c, void* user) noexcept {
        auto* fn = static_cast<std::function<void(int)>*>(user);
        (*fn)(osdkit_completion_get_return_value(c));
        delete fn;  // the callback runs exactly once
    }
    Handle h_;
    std::function<void(int)>* fn_ = nullptr;
    bool armed_ = false;
};

// A compound write (osdkit_write_op): ops applied atomically by IoCtx::operate. Reusable.
class WriteOp {
public:
    WriteOp() : h_(osdkit_write_op_new()) {
        if (h_.get() == nullptr) {
            throw Error(ENOMEM, "osdkit_write_op_new");
        }
    }
    WriteOp& create(bool exclusive) { return add(osdkit_write_op_create(get(), exclusive ? 1 : 0)); }
    WriteOp& write(std::string_view d, std::uint64_t off) {
        return add(osdkit_write_op_write(get(), d.data(), d.size(), off));
    }
    WriteOp& write_full(std::string_view d) { return add(osdkit_write_op_write_full(get(), d.data(), d.size())); }
    WriteOp& append(std::string_view d) { return add(osdkit_write_op_append(get(), d.data(), d.size())); }
    WriteOp& remove() { return add(osdkit_write_op_remove(get())); }
    WriteOp& truncate(std::uint64_t size) { return add(osdkit_write_op_truncate(get(), size)); }
    WriteOp& zero(std::uint64_t off, std::uint64_t len) { return add(osdkit_write_op_zero(get(), off, len)); }
    WriteOp& setxattr(const std::string& name, std::string_view v) {
        return add(osdkit_write_op_setxattr(get(), name.c_str(), v.data(), v.size()));
    }
    WriteOp& rmxattr(const std::string& name) { return add(osdkit_write_op_rmxattr(get(), name.c_str())); }
    // cmp_op is OSDKIT_CMPXATTR_OP_*; a failed comparison fails the whole op with ECANCELED.
    WriteOp& cmpxattr(const std::string& name, std::uint8_t cmp_op, std::string_view v) {
        return add(osdkit_write_op_cmpxattr(get(), name.c_str(), cmp_op, v.data(), v.size()));
    }
    WriteOp& omap_set(const std::map<std::string, std::string>& m) {
        detail::OmapArgs a(m);
        return add(osdkit_write_op_omap_set(get(), a.keys.data(), a.vals.data(), a.lens.data(), a.keys.size()));
    }
    WriteOp& omap_rm_keys(const std::vector<std::string>& keys) {
        auto k = detail::c_strs(keys);
        return add(osdkit_write_op_omap_rm_keys(get(), k.data(), k.size()));
    }
    osdkit_write_op* get() const { return h_.checked("WriteOp"); }

private:
    WriteOp& add(int r) {
        detail::check(r, "osdkit_write_op");
        return *this;
    }
    detail::Handle<osdkit_write_op, osdkit_write_op_free> h_;
};

// A compound read (osdkit_read_op). The places given to each op are filled when the request
// completes and must stay valid until then; `prval` (may be null) gets the op's result.
class ReadOp {
public:
    ReadOp() : h_(osdkit_read_op_new()) {
        if (h_.get() == nullptr) {
            throw Error(ENOMEM, "osdkit_read_op_new");
        }
    }
    ReadOp& read(std::uint64_t off, void* buf, std::size_t len, std::size_t* bytes_read, int* prval = nullptr) {
        return add(osdkit_read_op_read(get(), off, len, buf, bytes_read, prval));
    }
    ReadOp& stat(std::uint64_t* size, std::int64_t* mtime_sec, int* prval = nullptr) {
        return add(osdkit_read_op_stat(get(), size, mtime_sec, nullptr, prval));
    }
    ReadOp& cmpxattr(const std::string& name, std::uint8_t cmp_op, std::string_view v) {
        return add(osdkit_read_op_cmpxattr(get(), name.c_str(), cmp_op, v.data(), v.size()));
    }
    // The iterator is turned into a map by pairs() after the request completed.
    ReadOp& getxattrs(osdkit_kv_iter** iter, int* prval = nullptr) {
        return add(osdkit_read_op_getxattrs(get(), iter, prval));
    }
    ReadOp& omap_get_vals(const std::string& start_after, std::uint64_t max, osdkit_kv_iter** iter,
                          unsigned char* more, int* prval = nullptr) {
        return add(osdkit_read_op_omap_get_vals(get(), start_after.c_str(), max, iter, more, prval));
    }
    // Takes an iterator a completed read filled in (null: an empty map) and releases it.
    static std::map<std::string, std::string> pairs(osdkit_kv_iter* iter) {
        return iter != nullptr ? detail::drain(iter) : std::map<std::string, std::string>();
    }
    osdkit_read_op* get() const { return h_.checked("ReadOp"); }

private:
    ReadOp& add(int r) {
        detail::check(r, "osdkit_read_op");
        return *this;
    }
    detail::Handle<osdkit_read_op, osdkit_read_op_free> h_;
};

// A pool handle (osdkit_ioctx): object calls by librados' names.
class IoCtx {
public:
    explicit IoCtx(osdkit_ioctx* io) : h_(io) {}

    void write(const std::string& oid, std::string_view d, std::uint64_t off) {
        detail::check(osdkit_ioctx_write(get(), oid.c_str(), d.data(), d.size(), off), "osdkit_ioctx_write");
    }
    void write_full(const std::string& oid, std::string_view d) {
        detail::check(osdkit_ioctx_write_full(get(), oid.c_str(), d.data(), d.size()), "osdkit_ioctx_write_full");
    }
    void append(const std::string& oid, std::string_view d) {
        detail::check(osdkit_ioctx_append(get(), oid.c_str(), d.data(), d.size()), "osdkit_ioctx_append");
    }
    // Up to `len` bytes from `off` (python-rados' default length).
    std::string read(const std::string& oid, std::size_t len = 8192, std::uint64_t off = 0) {
        std::string s(len, '\0');
        int n = detail::check(osdkit_ioctx_read(get(), oid.c_str(), s.data(), len, off), "osdkit_ioctx_read");
        s.resize(static_cast<std::size_t>(n));
        return s;
    }
    ObjectStat stat(const std::string& oid) {
        std::uint64_t size = 0;
        std::int64_t sec = 0;
        std::uint32_t nsec = 0;
        detail::check(osdkit_ioctx_stat(get(), oid.c_str(), &size, &sec, &nsec), "osdkit_ioctx_stat");
        return detail::make_stat(size, sec, nsec);
    }
    void remove(const std::string& oid) { detail::check(osdkit_ioctx_remove(get(), oid.c_str()), "osdkit_ioctx_remove"); }
    void trunc(const std::string& oid, std::uint64_t size) {
        detail::check(osdkit_ioctx_trunc(get(), oid.c_str(), size), "osdkit_ioctx_trunc");
    }
    std::string getxattr(const std::string& oid, const std::string& name) {
        std::string v(256, '\0');
        for (;;) {
            int r = osdkit_ioctx_getxattr(get(), oid.c_str(), name.c_str(), v.data(), v.size());
            if (r == -ERANGE && v.size() < (std::size_t{1} << 30)) {
                v.resize(v.size() * 4);
                continue;
            }
            v.resize(static_cast<std::size_t>(detail::check(r, "osdkit_ioctx_getxattr")));
            return v;
        }
    }
    void setxattr(const std::string& oid, const std::string& name, std::string_view v) {
        detail::check(osdkit_ioctx_setxattr(get(), oid.c_str(), name.c_str(), v.data(), v.size()),
                      "osdkit_ioctx_setxattr");
    }
    void rmxattr(const std::string& oid, const std::string& name) {
        detail::check(osdkit_ioctx_rmxattr(get(), oid.c_str(), name.c_str()), "osdkit_ioctx_rmxattr");
    }
    std::map<std::string, std::string> getxattrs(const std::string& oid) {
        osdkit_kv_iter* it = nullptr;
        detail::check(osdkit_ioctx_getxattrs(get(), oid.c_str(), &it), "osdkit_ioctx_getxattrs");
        return detail::drain(it);
    }
    void omap_set(const std::string& oid, const std::map<std::string, std::string>& m) {
        detail::OmapArgs a(m);
        detail::check(osdkit_ioctx_omap_set(get(), oid.c_str(), a.keys.data(), a.vals.data(), a.lens.data(),
                                            a.keys.size()),
                      "osdkit_ioctx_omap_set");
    }
    void omap_rm_keys(const std::string& oid, const std::vector<std::string>& keys) {
        auto k = detail::c_strs(keys);
        detail::check(osdkit_ioctx_omap_rm_keys(get(), oid.c_str(), k.data(), k.size()), "osdkit_ioctx_omap_rm_keys");
    }
    std::map<std::string, std::string> omap_get_vals(const std::string& oid, const std::string& start_after = "",
                                                     std::uint64_t max = 1024) {
        osdkit_kv_iter* it = nullptr;
        detail::check(osdkit_ioctx_omap_get_vals(get(), oid.c_str(), start_after.c_str(), max, &it),
                      "osdkit_ioctx_omap_get_vals");
        return detail::drain(it);
    }
    std::map<std::string, std::string> omap_get_vals_by_keys(const std::string& oid,
                                                             const std::vector<std::string>& keys) {
        auto k = detail::c_strs(keys);
        osdkit_kv_iter* it = nullptr;
        detail::check(osdkit_ioctx_omap_get_vals_by_keys(get(), oid.c_str(), k.data(), k.size(), &it),
                      "osdkit_ioctx_omap_get_vals_by_keys");
        return detail::drain(it);
    }

    // Every object name in the pool, PG by PG.
    std::vector<std::string> list_objects() {
        Lister l = list();
        std::vector<std::string> names;
        std::string n;
        while (l.next(n)) {
            names.push_back(n);
        }
        return names;
    }

    // A listing that can be paused and resumed through its cursor (osdkit_list_*).
    class Lister {
    public:
        explicit Lister(osdkit_list_ctx* l) : h_(l) {}
        // The next name; false at the end.
        bool next(std::string& name) {
            const char* p = nullptr;
            int r = osdkit_list_next(h_.checked("Lister"), &p);
            if (r == -ENOENT) {
                return false;
            }
            detail::check(r, "osdkit_list_next");
            name = p;
            return true;
        }
        std::string cursor() {
            char buf[4096];
            detail::check(osdkit_list_get_cursor(h_.checked("Lister"), buf, sizeof(buf)), "osdkit_list_get_cursor");
            return buf;
        }
        void seek(const std::string& cursor) {
            detail::check(osdkit_list_seek(h_.checked("Lister"), cursor.c_str()), "osdkit_list_seek");
        }

    private:
        detail::Handle<osdkit_list_ctx, osdkit_list_close> h_;
    };
    Lister list() {
        osdkit_list_ctx* l = nullptr;
        detail::check(osdkit_ioctx_list_open(get(), &l), "osdkit_ioctx_list_open");
        return Lister(l);
    }

    void operate(const std::string& oid, const WriteOp& op) {
        detail::check(osdkit_write_op_operate(op.get(), get(), oid.c_str()), "osdkit_write_op_operate");
    }
    void operate(const std::string& oid, const ReadOp& op) {
        detail::check(osdkit_read_op_operate(op.get(), get(), oid.c_str()), "osdkit_read_op_operate");
    }

    // Async calls: the data is copied before they return; `c` completes once.
    void aio_write(const std::string& oid, Completion& c, std::string_view d, std::uint64_t off) {
        arm(c, osdkit_ioctx_aio_write(get(), oid.c_str(), c.get(), d.data(), d.size(), off), "osdkit_ioctx_aio_write");
    }
    void aio_write_full(const std::string& oid, Completion& c, std::string_view d) {
        arm(c, osdkit_ioctx_aio_write_full(get(), oid.c_str(), c.get(), d.data(), d.size()),
            "osdkit_ioctx_aio_write_full");
    }
    void aio_append(const std::string& oid, Completion& c, std::string_view d) {
        arm(c, osdkit_ioctx_aio_append(get(), oid.c_str(), c.get(), d.data(), d.size()), "osdkit_ioctx_aio_append");
    }
    // `buf` must stay valid until `c` completes; its return value is the bytes read.
    void aio_read(const std::string& oid, Completion& c, void* buf, std::size_t len, std::uint64_t off) {
        arm(c, osdkit_ioctx_aio_read(get(), oid.c_str(), c.get(), buf, len, off), "osdkit_ioctx_aio_read");
    }
    void aio_remove(const std::string& oid, Completion& c) {
        arm(c, osdkit_ioctx_aio_remove(get(), oid.c_str(), c.get()), "osdkit_ioctx_aio_remove");
    }
    void aio_operate(const std::string& oid, Completion& c, const WriteOp& op) {
        arm(c, osdkit_write_op_aio_operate(op.get(), get(), c.get(), oid.c_str()), "osdkit_write_op_aio_operate");
    }
    void aio_operate(const std::string& oid, Completion& c, const ReadOp& op) {
        arm(c, osdkit_read_op_aio_operate(op.get(), get(), c.get(), oid.c_str()), "osdkit_read_op_aio_operate");
    }

    std::int64_t pool_id() const {
        std::int64_t id = osdkit_ioctx_get_id(get());
        detail::check(id < 0 ? static_cast<int>(id) : 0, "osdkit_ioctx_get_id");
        return id;
    }
    osdkit_ioctx* get() const { return h_.checked("IoCtx"); }

private:
    static void arm(Completion& c, int r, const char* fn) {
        detail::check(r, fn);
        c.mark_armed();
    }
    detail::Handle<osdkit_ioctx, osdkit_ioctx_destroy> h_;
};

// A cluster handle (osdkit_rados): create by name, configure, connect; shut down by the
// destructor.
class Rados {
public:
    explicit Rados(const std::string& name = "client.admin") {
        osdkit_rados* r = nullptr;
        detail::check(osdkit_rados_create(name.c_str(), &r), "osdkit_rados_create");
        h_ = Handle(r);
    }
    // nullopt: search $OSDKIT_CONF and the default paths.
    void conf_read_file(const std::optional<std::string>& path = std::nullopt) {
        detail::check(osdkit_rados_conf_read_file(get(), path ? path->c_str() : nullptr), "osdkit_rados_conf_read_file");
    }
    void conf_set(const std::string& option, const std::string& value) {
        detail::check(osdkit_rados_conf_set(get(), option.c_str(), value.c_str()), "osdkit_rados_conf_set");
    }
    std::string conf_get(const std::string& option) {
        char buf[4096];
        detail::check(osdkit_rados_conf_get(get(), option.c_str(), buf, sizeof(buf)), "osdkit_rados_conf_get");
        return buf;
    }
    void connect() { detail::check(osdkit_rados_connect(get()), "osdkit_rados_connect"); }

    void pool_create(const std::string& name) {
        detail::check(osdkit_rados_pool_create(get(), name.c_str()), "osdkit_rados_pool_create");
    }
    void pool_delete(const std::string& name) {
        detail::check(osdkit_rados_pool_delete(get(), name.c_str()), "osdkit_rados_pool_delete");
    }
    std::int64_t pool_lookup(const std::string& name) {
        std::int64_t id = osdkit_rados_pool_lookup(get(), name.c_str());
        detail::check(id < 0 ? static_cast<int>(id) : 0, "osdkit_rados_pool_lookup");
        return id;
    }
    std::vector<std::string> pool_list() {
        std::vector<char> buf(256);
        for (;;) {
            int need = detail::check(osdkit_rados_pool_list(get(), buf.data(), buf.size()), "osdkit_rados_pool_list");
            if (static_cast<std::size_t>(need) <= buf.size()) {
                break;
            }
            buf.resize(static_cast<std::size_t>(need));
        }
        std::vector<std::string> names;
        for (const char* p = buf.data(); *p != '\0'; p += std::strlen(p) + 1) {
            names.emplace_back(p);
        }
        return names;
    }
    IoCtx open_ioctx(const std::string& pool) {
        osdkit_ioctx* io = nullptr;
        detail::check(osdkit_ioctx_create(get(), pool.c_str(), &io), "osdkit_ioctx_create");
        return IoCtx(io);
    }
    osdkit_rados* get() const { return h_.checked("Rados"); }

private:
    using Handle = detail::Handle<osdkit_rados, osdkit_rados_shutdown>;
    Handle h_;
};

}  // namespace osdkit

#endif  // OSDKIT_RADOS_HPP
