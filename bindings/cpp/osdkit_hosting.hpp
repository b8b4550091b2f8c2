// osdkit_hosting.hpp: header-only C++17 RAII wrappers over the daemons osdkit hosts in the
// calling process: one OSD or monitor at a time (osdkit_osd_*, osdkit_mon_*, libosd's shape)
// and the whole in-process cluster (osdkit_cluster_*).
//
//   osdkit::HostedMonitor mon({"a", "/etc/osdkit/osdkit.conf"});
//   mon.start();
//   osdkit::HostedOsd osd({"0", "/etc/osdkit/osdkit.conf", "", {}, [] { /* up in the map */ }});
//   osd.start();                        // returns before the OSD is up
//   osd.wait_active(std::chrono::seconds(30));
//   ...
//   osd.shutdown(); osd.join();          // or let the destructor stop it
//
// Failing calls throw osdkit::Error. Callbacks run on the instance's own thread.
#ifndef OSDKIT_HOSTING_HPP
#define OSDKIT_HOSTING_HPP

#include "osdkit_rados.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osdkit {

// What a hosted daemon is made from.
struct DaemonArgs {
    std::string id;       // an OSD's number ("0"), a monitor's name ("a")
    std::string conf;     // "": no conf file
    std::string cluster;  // "": "ceph"
    std::vector<std::pair<std::string, std::string>> options;
    std::function<void()> on_active;    // up in the map (a monitor: serving)
    std::function<void()> on_shutdown;  // stopped on its own, not through shutdown()
};

enum class DaemonState {
    New = OSDKIT_STATE_NEW,
    Starting = OSDKIT_STATE_STARTING,
    Booting = OSDKIT_STATE_BOOTING,
    Active = OSDKIT_STATE_ACTIVE,
    Stopping = OSDKIT_STATE_STOPPING,
    Stopped = OSDKIT_STATE_STOPPED,
    Failed = OSDKIT_STATE_FAILED,
};

namespace detail {

// The C functions of one kind of hosted daemon.
template <typename H, typename A>
struct DaemonApi {
    int (*make)(const A*, H**);
    int (*start)(const H*);
    int (*state)(const H*, char*, std::size_t);
    int (*wait_active)(const H*, std::uint32_t);
    int (*shutdown)(const H*);
    int (*join)(const H*, std::uint32_t);
    int (*asok_path)(const H*, char*, std::size_t);
    int (*addr)(const H*, char*, std::size_t);
};

template <typename H, typename A, void (*Free)(H*)>
class Hosted {
public:
    DaemonState state(std::string* why = nullptr) const {
        char buf[1024] = "";
        int r = check(api().state(get(), buf, sizeof(buf)), "state");
        if (why != nullptr) {
            *why = buf;
        }
        return static_cast<DaemonState>(r);
    }
    void start() { check(api().start(get()), "start"); }
    // Throws Error(ETIMEDOUT), or Error(EIO) with why it failed.
    void wait_active(std::chrono::milliseconds timeout) {
        check(api().wait_active(get(), static_cast<std::uint32_t>(timeout.count())), "wait_active");
    }
    void shutdown() { check(api().shutdown(get()), "shutdown"); }
    // Waits until stopped or failed (timeout 0: for ever); returns that state.
    DaemonState join(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        return static_cast<DaemonState>(check(api().join(get(), static_cast<std::uint32_t>(timeout.count())), "join"));
    }
    std::string asok_path() const { return text(api().asok_path, "asok_path"); }
    std::string addr() const { return text(api().addr, "addr"); }
    H* get() const { return h_.checked("hosted daemon"); }

protected:
    using Api = DaemonApi<H, A>;
    virtual ~Hosted() = default;
    virtual const Api& api() const = 0;

    // Makes the daemon from `a`; the callbacks live in cbs_ until the handle is freed.
    void make(const DaemonArgs& a, A& c) {
        cbs_ = std::make_unique<Callbacks>(Callbacks{a.on_active, a.on_shutdown});
        for (const auto& [k, v] : a.options) {
            opts_.push_back(k.c_str());
            opts_.push_back(v.c_str());
        }
        opts_.push_back(nullptr);
        c.conf = a.conf.empty() ? nullptr : a.conf.c_str();
        c.cluster = a.cluster.empty() ? nullptr : a.cluster.c_str();
        c.options = opts_.data();
        c.on_active = cbs_->active ? &active_tramp : nullptr;
        c.on_shutdown = cbs_->own ? &shutdown_tramp : nullptr;
        c.user = cbs_.get();
        H* h = nullptr;
        detail::check(api().make(&c, &h), "osdkit daemon new");
        h_ = Handle<H, Free>(h);
        opts_.clear();
    }

private:
    struct Callbacks {
        std::function<void()> active;
        std::function<void()> own;
    };
    static void active_tramp(void* user) noexcept { static_cast<Callbacks*>(user)->active(); }
    static void shutdown_tramp(void* user) noexcept { static_cast<Callbacks*>(user)->own(); }
    int check(int r, const char* what) const { return detail::check(r, what); }
    std::string text(int (*f)(const H*, char*, std::size_t), const char* what) const {
        char buf[4096];
        check(f(get(), buf, sizeof(buf)), what);
        return buf;
    }

    // Declared before h_: the handle (whose free joins the daemon's thread) goes first.
    std::unique_ptr<Callbacks> cbs_;
    std::vector<const char*> opts_;
    Handle<H, Free> h_;
};

}  // namespace detail

// An OSD hosted in this process (osdkit_osd_*): stopped and freed by the destructor.
class HostedOsd : public detail::Hosted<osdkit_osd, osdkit_osd_args, osdkit_osd_free> {
public:
    explicit HostedOsd(const DaemonArgs& a) {
        osdkit_osd_args c{};
        c.id = std::stoi(a.id);
        make(a, c);
    }

    // Direct I/O on this OSD, no network hop (its own op queue): objects it is primary for
    // (Error(ENXIO) otherwise; ENODEV unless active).
    std::string read(const std::string& pool, const std::string& oid, std::size_t len = 8192, std::uint64_t off = 0) {
        std::string s(len, '\0');
        int n = detail::check(osdkit_osd_read(get(), pool.c_str(), oid.c_str(), off, len, s.data(), 0, nullptr, nullptr),
                              "osdkit_osd_read");
        s.resize(static_cast<std::size_t>(n));
        return s;
    }
    // Returns once committed on every replica.
    void write(const std::string& pool, const std::string& oid, std::string_view data, std::uint64_t off = 0) {
        detail::check(osdkit_osd_write(get(), pool.c_str(), oid.c_str(), off, data.size(), data.data(), OSDKIT_IO_STABLE,
                                       nullptr, nullptr),
                      "osdkit_osd_write");
    }
    void truncate(const std::string& pool, const std::string& oid, std::uint64_t size) {
        detail::check(osdkit_osd_truncate(get(), pool.c_str(), oid.c_str(), size, OSDKIT_IO_STABLE, nullptr, nullptr),
                      "osdkit_osd_truncate");
    }

    // The same without waiting: `done` runs once, on the thread that finished the op (it must
    // not block), with 0 or a negative errno (never a throw); a call that cannot be queued
    // throws and `done` never runs.
    using ReadDone = std::function<void(int r, std::string data)>;
    using WriteDone = std::function<void(int r)>;
    void aio_read(const std::string& pool, const std::string& oid, std::size_t len, std::uint64_t off, ReadDone done) {
        auto st = std::make_unique<ReadState>(ReadState{std::string(len, '\0'), std::move(done)});
        int r = osdkit_osd_read(get(), pool.c_str(), oid.c_str(), off, len, st->buf.data(), 0, &read_tramp, st.get());
        detail::check(r, "osdkit_osd_read");
        st.release();  // the callback owns it now
    }
    // `flags`: OSDKIT_IO_STABLE (committed on every replica) and/or OSDKIT_IO_UNSTABLE.
    void aio_write(const std::string& pool, const std::string& oid, std::string_view data, std::uint64_t off,
                   WriteDone done, int flags = OSDKIT_IO_STABLE) {
        auto st = std::make_unique<WriteDone>(std::move(done));
        int r = osdkit_osd_write(get(), pool.c_str(), oid.c_str(), off, data.size(), data.data(), flags, &write_tramp,
                                 st.get());
        detail::check(r, "osdkit_osd_write");
        st.release();
    }
    void aio_truncate(const std::string& pool, const std::string& oid, std::uint64_t size, WriteDone done,
                      int flags = OSDKIT_IO_STABLE) {
        auto st = std::make_unique<WriteDone>(std::move(done));
        int r = osdkit_osd_truncate(get(), pool.c_str(), oid.c_str(), size, flags, &write_tramp, st.get());
        detail::check(r, "osdkit_osd_truncate");
        st.release();
    }

private:
    struct ReadState {
        std::string buf;
        ReadDone done;
    };
    static void read_tramp(int r, std::uint64_t len, int, void* user) noexcept {
        std::unique_ptr<ReadState> st(static_cast<ReadState*>(user));
        st->buf.resize(r < 0 ? 0 : static_cast<std::size_t>(len));
        try {
            st->done(r, std::move(st->buf));
        } catch (...) {
        }
    }
    static void write_tramp(int r, std::uint64_t, int, void* user) noexcept {
        std::unique_ptr<WriteDone> done(static_cast<WriteDone*>(user));
        try {
            (*done)(r);
        } catch (...) {
        }
    }
    const Api& api() const override {
        static const Api a{osdkit_osd_new, osdkit_osd_start, osdkit_osd_state, osdkit_osd_wait_active,
                           osdkit_osd_shutdown, osdkit_osd_join, osdkit_osd_asok_path, osdkit_osd_addr};
        return a;
    }
};

// A monitor hosted in this process (osdkit_mon_*).
class HostedMonitor : public detail::Hosted<osdkit_mon, osdkit_mon_args, osdkit_mon_free> {
public:
    explicit HostedMonitor(const DaemonArgs& a) {
        osdkit_mon_args c{};
        c.id = a.id.c_str();
        make(a, c);
    }

    // Runs one monitor command (JSON with a "prefix", as `ceph` sends them, e.g.
    // {"prefix": "osd create", "id": 0}, which an OSD needs before it boots); returns its
    // output, throws Error with the monitor's reason on failure.
    // Output over 1 MiB throws Error(ERANGE) (the command ran).
    std::string command(const std::string& json) {
        std::string out(1 << 20, '\0');
        char status[1024] = "";
        int r = osdkit_mon_command(get(), json.c_str(), out.data(), out.size(), status, sizeof(status));
        if (r < 0) {
            // The monitor's reason, else the call's own (a bad argument, output too large).
            const char* why = status[0] != '\0' ? status : osdkit_last_error();
            throw Error(-r, json + ": " + (why != nullptr ? why : ""));
        }
        out.resize(std::char_traits<char>::length(out.c_str()));
        return out;
    }

private:
    const Api& api() const override {
        static const Api a{osdkit_mon_new, osdkit_mon_start, osdkit_mon_state, osdkit_mon_wait_active,
                           osdkit_mon_shutdown, osdkit_mon_join, osdkit_mon_asok_path, osdkit_mon_addr};
        return a;
    }
};

// SIGTERM/SIGINT (begin stopping) or SIGHUP (reopen logs) to every hosted daemon; how many.
inline int signal_all(int signum) { return detail::check(osdkit_signal_all(signum), "osdkit_signal_all"); }

// A monitor and N OSDs hosted in this process (osdkit_cluster), with the pool "data".
class Cluster {
public:
    Cluster(const std::string& dir, int n_osds, const std::string& store = "mem") {
        osdkit_cluster* c = nullptr;
        detail::check(osdkit_cluster_start(dir.c_str(), n_osds, store.c_str(), &c), "osdkit_cluster_start");
        h_ = Handle(c);
    }
    std::string mon_addr() const {
        char buf[128];
        detail::check(osdkit_cluster_mon_addr(get(), buf, sizeof(buf)), "osdkit_cluster_mon_addr");
        return buf;
    }
    // A connected client of this cluster.
    Rados client(const std::string& name = "client.admin") const {
        Rados r(name);
        r.conf_set("mon_host", mon_addr());
        r.connect();
        return r;
    }
    int num_osds() const { return detail::check(osdkit_cluster_num_osds(get()), "osdkit_cluster_num_osds"); }
    void stop_osd(int id) { detail::check(osdkit_cluster_stop_osd(get(), id), "osdkit_cluster_stop_osd"); }
    void kill_osd(int id) { detail::check(osdkit_cluster_kill_osd(get(), id), "osdkit_cluster_kill_osd"); }
    void start_osd(int id) { detail::check(osdkit_cluster_start_osd(get(), id), "osdkit_cluster_start_osd"); }
    bool osd_up(int id) const { return detail::check(osdkit_cluster_osd_up(get(), id), "osdkit_cluster_osd_up") == 1; }
    void wait_for_clean(std::chrono::milliseconds timeout) {
        detail::check(osdkit_cluster_wait_for_clean(get(), static_cast<std::uint32_t>(timeout.count())),
                      "osdkit_cluster_wait_for_clean");
    }
    osdkit_cluster* get() const { return h_.checked("Cluster"); }

private:
    using Handle = detail::Handle<osdkit_cluster, osdkit_cluster_free>;
    Handle h_;
};

}  // namespace osdkit

#endif  // OSDKIT_HOSTING_HPP
